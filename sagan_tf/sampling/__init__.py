"""Drawing from a generator and showing what it draws: latents and truncation (`latents`), sample grids and PNGs
(`images`), interpolations (`interpolation`), self-attention maps (`attention_maps`), plots (`plots`) and
TensorBoard image summaries (`summaries`)."""
