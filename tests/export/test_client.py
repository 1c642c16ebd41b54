"""export.client: the requests it builds (REST JSON, gRPC PredictRequest) and the in-process path end to end."""

import base64
import contextlib
import http.server
import io
import json
import math
import os
import re
import subprocess
import threading
import types

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from export import client
from sagan_tf.sampling import latents
from sagan_tf.serving import signatures as serving
from sagan_tf.errors import ServingError
from tests.export.conftest import CAP
from tests.tiny import CLASS_NAMES, PYTHON, ROOT, main_in_process, subprocess_environment


def _flags(**values):
    defaults = dict(server=None, grpc=False, saved_model_dir=None, model_name="sagan", model_version=None,
                    signature="generate", labels=None, classes=None, list_classes=False, batch_size=None, seed=0,
                    truncation="none", latent_dim=None, output_dir="samples")
    return types.SimpleNamespace(**{**defaults, **values})


def _png_pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_names_match_the_library():
    for name in ("SERVING_SIGNATURE", "GENERATE_SIGNATURE", "GENERATE_BY_NAME_SIGNATURE", "CLASS_NAMES_SIGNATURE",
                 "Z_INPUT", "LABELS_INPUT", "CLASSES_INPUT", "BATCH_SIZE_INPUT", "SEED_INPUT", "TRUNCATION_INPUT",
                 "IMAGES_OUTPUT", "PNG_OUTPUT", "CLASS_NAMES_OUTPUT", "LIMITS_SIGNATURE", "MAX_BATCH_SIZE_OUTPUT",
                 "MAX_CLASS_NAME_LENGTH_OUTPUT"):
        assert getattr(client, name) == getattr(serving, name), name


def test_generate_inputs_and_rest_body():
    inputs = client.make_inputs("generate", labels=[3, 0, 1], seed=42, truncation=0.5)
    assert {k: (v.dtype, np.shape(v)) for k, v in inputs.items()} == {
        "labels": (np.int32, (3,)), "seed": (np.int64, ()), "truncation": (np.float32, ())}
    body = client.rest_body("generate", inputs)
    assert body == {"signature_name": "generate", "inputs": {"labels": [3, 0, 1], "seed": 42, "truncation": 0.5}}
    # What goes over the wire: plain JSON numbers, the scalars unbatched (the columnar "inputs" format).
    assert json.loads(json.dumps(body)) == body

    unconditional = client.make_inputs("generate", batch_size=6, seed=1, truncation=2.0)
    assert client.rest_body("generate", unconditional) == {
        "signature_name": "generate", "inputs": {"batch_size": 6, "seed": 1, "truncation": 2.0}}


def test_serving_default_inputs_are_the_library_latents():
    inputs = client.make_inputs("serving_default", labels=[1, 2], seed=3, truncation=0.8, latent_dim=16)
    assert inputs["z"].shape == (2, 16) and inputs["z"].dtype == np.float32
    # The latents generate draws for seed 3 and truncation 0.8, not a client-side sampler's.
    np.testing.assert_array_equal(inputs["z"], latents.truncated_latents(2, 16, seed=3, truncation=0.8).numpy())
    np.testing.assert_array_equal(inputs["labels"], [1, 2])
    body = client.rest_body("serving_default", inputs)
    assert body["signature_name"] == "serving_default"
    np.testing.assert_array_equal(np.asarray(body["inputs"]["z"], np.float32), inputs["z"])
    unconditional = client.make_inputs("serving_default", batch_size=3, seed=3, truncation=0.8, latent_dim=16)
    assert set(unconditional) == {"z"}
    np.testing.assert_array_equal(unconditional["z"], latents.truncated_latents(3, 16, 3, 0.8).numpy())


def test_default_truncation_is_the_untruncated_normal():
    values = flags.FlagValues()
    client.define_flags(values)
    values(["export.client"])
    assert client.parse_truncation(values.truncation) == client.UNTRUNCATED
    # The finite stand-in for "no truncation" draws exactly what math.inf draws, and that is the standard normal:
    # |z| > 1 for 2 * (1 - Phi(1)) = 31.7% of the latents, not 0% as with the old default of 1.0.
    z = latents.truncated_latents(256, 128, seed=7, truncation=client.UNTRUNCATED).numpy()
    np.testing.assert_array_equal(z, latents.truncated_latents(256, 128, seed=7, truncation=math.inf).numpy())
    assert np.mean(np.abs(z) > 1) == pytest.approx(math.erfc(1 / math.sqrt(2)), abs=0.01)
    assert client.parse_truncation(" None ") == client.UNTRUNCATED and client.parse_truncation("0.7") == 0.7
    for bad in ("0", "-1", "inf", "nan", "strong"):
        with pytest.raises(ServingError, match="--truncation takes 'none'"):
            client.parse_truncation(bad)


@pytest.mark.parametrize("kwargs, message", [
    (dict(signature="generate"), "--labels"),
    (dict(signature="serving_default", labels=[0]), "--latent_dim"),
    (dict(signature="generate", labels=[]), "empty"),
    (dict(signature="serving_default", labels=[0], latent_dim=4, truncation=0.0), "Received: truncation=0.0"),
    (dict(signature="serving_default", labels=[0], latent_dim=-4), "Received: latent_dim=-4"),
    (dict(signature="classify", labels=[0]), "Unknown signature"),
])
def test_bad_requests_are_serving_errors(kwargs, message):
    with pytest.raises(ServingError, match=message):
        client.make_inputs(**kwargs)


def test_rest_url():
    assert client.rest_url("localhost:8501", "sagan") == "http://localhost:8501/v1/models/sagan:predict"
    assert client.rest_url("https://host/", "m", 3) == "https://host/v1/models/m/versions/3:predict"


def test_parse_rest_response():
    png = b"\x89PNG\r\n\x1a\nrest"
    payload = {"outputs": {"images": [[[[0, 255, 7]]]], "png_bytes": [{"b64": base64.b64encode(png).decode()}]}}
    parsed = client.parse_rest_response(payload)
    assert parsed["images"].dtype == np.uint8 and parsed["images"].shape == (1, 1, 1, 3)
    assert list(parsed["png_bytes"]) == [png]
    # One output (serving_default): TensorFlow Serving writes the tensor itself under "outputs".
    single = client.parse_rest_response({"outputs": [[[[0.5, -1.0, 1.0]]]]})
    assert single["images"].dtype == np.float32
    with pytest.raises(ServingError, match="labels must be"):
        client.parse_rest_response({"error": "assertion failed: [labels must be class ids in [0, 4)]"})


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """Answers a predict request as TensorFlow Serving's REST API does, and records what it was sent."""

    requests = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        if body["inputs"].get("labels") == [99]:
            self._reply(400, {"error": "assertion failed: [labels must be class ids in [0, 4)]"})
            return
        if body["inputs"].get("labels") == [98]:  # what TensorFlow Serving answers when its batching queue is full
            self._reply(503, {"error": "The batch scheduling queue to which this task was submitted is full"})
            return
        pixels = np.full((1, 2, 2, 3), 200, np.uint8)
        png = io.BytesIO()
        Image.fromarray(pixels[0]).save(png, format="PNG")
        self._reply(200, {"outputs": {"images": pixels.tolist(),
                                      "png_bytes": [{"b64": base64.b64encode(png.getvalue()).decode()}]}})

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    _FakeServing.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_rest_round_trip_against_a_fake_server(fake_server, tmp_path):
    paths = client.run(_flags(server=fake_server, model_name="gan", model_version=5, labels="2", seed=9,
                              output_dir=str(tmp_path)))
    assert _FakeServing.requests == [("/v1/models/gan/versions/5:predict", {
        "signature_name": "generate", "inputs": {"labels": [2], "seed": 9, "truncation": client.UNTRUNCATED}})]
    assert len(paths) == 1
    np.testing.assert_array_equal(_png_pixels(paths[0]), np.full((2, 2, 3), 200, np.uint8))
    with pytest.raises(ServingError, match=r"HTTP 400.*labels must be"):
        client.run(_flags(server=fake_server, labels="99", output_dir=str(tmp_path)))


_RUN_THE_CLIENT = r"""
import json, runpy, sys
sys.argv = ["export.client", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("export.client", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "scipy"})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_rest_generate_needs_no_tensorflow(fake_server, tmp_path):
    # The thin REST client: the default signature over REST imports neither TensorFlow nor SciPy.
    result = subprocess.run([PYTHON, "-c", _RUN_THE_CLIENT, f"--server={fake_server}", "--labels=2", "--seed=9",
                             f"--output_dir={tmp_path}"], cwd=ROOT, env=subprocess_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 0, "heavy": []}
    assert [p.name for p in tmp_path.iterdir()] == ["image_0.png"]


def test_unreachable_server_is_a_serving_error(tmp_path):
    with pytest.raises(ServingError, match="Cannot reach TensorFlow Serving"):
        client.rest_predict("127.0.0.1:9", "sagan", "generate", client.make_inputs("generate", labels=[0]),
                            timeout=5)


def test_grpc_predict_request():
    try:
        import tensorflow_serving.apis  # noqa: F401
    except ImportError:
        with pytest.raises(ServingError, match="pip install tensorflow-serving-api"):
            client.predict_request("sagan", "generate", client.make_inputs("generate", labels=[0]))
        pytest.skip("tensorflow-serving-api is not installed: PredictRequest construction not tested "
                    "(the missing-package error is)")
    inputs = client.make_inputs("generate", labels=[1, 3], seed=5, truncation=0.5)
    request = client.predict_request("sagan", "generate", inputs, version=4)
    assert (request.model_spec.name, request.model_spec.signature_name) == ("sagan", "generate")
    assert request.model_spec.version.value == 4
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["labels"]), [1, 3])
    assert tf.make_ndarray(request.inputs["seed"]).dtype == np.int64
    assert tf.make_ndarray(request.inputs["truncation"]) == np.float32(0.5)


@contextlib.contextmanager
def grpc_server(loaded, refuse=None):
    """A PredictionService on loopback that runs a loaded SavedModel in-process, standing in for
    tensorflow_model_server; yields (address, the requests it received). `refuse`: (gRPC status code name, details)
    to answer every request with instead."""
    apis = pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc",
                               reason="tensorflow-serving-api is not installed: gRPC round trip not tested")
    import grpc
    from concurrent import futures

    from tensorflow_serving.apis import predict_pb2

    received = []

    class Servicer(apis.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
            received.append(request)
            if refuse:
                context.abort(getattr(grpc.StatusCode, refuse[0]), refuse[1])
            inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
            outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    apis.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.stop(None)


def test_grpc_round_trip_against_a_fake_server(exported, tmp_path):
    _, config, path, loaded = exported
    with grpc_server(loaded) as (address, received):
        flag_args, signature_args = _request_args(config, 2)
        paths = client.run(_flags(server=address, grpc=True, seed=8, output_dir=str(tmp_path), **flag_args))
    # Two images: the client reads the cap (limits) before it sends the generate request.
    assert [request.model_spec.signature_name for request in received] == ["limits", "generate"]
    assert received[1].model_spec.name == "sagan"
    expected = loaded.signatures["generate"](seed=tf.constant(8, tf.int64), truncation=tf.constant(np.inf),
                                             **signature_args)["images"].numpy()
    for png_path, image in zip(paths, expected):
        np.testing.assert_array_equal(_png_pixels(png_path), image)


def _request_args(config, batch):
    if config.conditional:
        labels = np.arange(batch, dtype=np.int32) % config.num_classes
        return dict(labels=",".join(map(str, labels))), dict(labels=tf.constant(labels))
    return dict(batch_size=batch), dict(batch_size=tf.constant(batch, tf.int32))


def test_in_process_generate_writes_the_model_pngs(exported, tmp_path):
    _, config, path, loaded = exported
    flag_args, signature_args = _request_args(config, 3)
    paths = client.run(_flags(saved_model_dir=path, seed=4, truncation=0.6, output_dir=str(tmp_path),
                              **flag_args))
    expected = loaded.signatures["generate"](seed=tf.constant(4, tf.int64), truncation=tf.constant(0.6),
                                             **signature_args)["images"].numpy()
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["image_0.png", "image_1.png", "image_2.png"]
    for png_path, image in zip(paths, expected):
        np.testing.assert_array_equal(_png_pixels(png_path), image)


@pytest.mark.parametrize("seed, truncation", [(1, 1.0), (2**40 + 5, 0.3)])
def test_in_process_serving_default_writes_the_generate_pngs(exported, tmp_path, seed, truncation):
    # A seed names an image: the client's serving_default latents are generate's, and it encodes the float images
    # as the model does, so both signatures write the same pixels for the same request.
    _, config, path, loaded = exported
    flag_args, signature_args = _request_args(config, 3)
    request = dict(saved_model_dir=path, seed=seed, truncation=truncation, **flag_args)
    generated = client.run(_flags(signature="generate", output_dir=str(tmp_path / "generate"), **request))
    served = client.run(_flags(signature="serving_default", output_dir=str(tmp_path / "serving"), **request))
    expected = loaded.signatures["generate"](seed=tf.constant(seed, tf.int64), truncation=tf.constant(truncation),
                                             **signature_args)["images"].numpy()
    assert len(generated) == len(served) == 3
    for generated_path, served_path, image in zip(generated, served, expected):
        np.testing.assert_array_equal(_png_pixels(generated_path), image)
        np.testing.assert_array_equal(_png_pixels(served_path), image)


def test_in_process_errors(exported, tmp_path):
    _, config, path, _ = exported
    if config.conditional:
        with pytest.raises(ServingError, match=r"assertion failed.*labels must be class ids in \[0, 4\)"):
            client.run(_flags(saved_model_dir=path, labels="0,4", output_dir=str(tmp_path)))
        with pytest.raises(ServingError, match="conditional: pass --labels"):
            client.run(_flags(saved_model_dir=path, batch_size=2, output_dir=str(tmp_path)))
    else:
        with pytest.raises(ServingError, match="unconditional: pass --batch_size"):
            client.run(_flags(saved_model_dir=path, labels="0", output_dir=str(tmp_path)))
    with pytest.raises(ServingError, match="not a SavedModel"):
        client.run(_flags(saved_model_dir=str(tmp_path), labels="0", output_dir=str(tmp_path)))
    with pytest.raises(ServingError, match="exactly one of"):
        client.run(_flags(labels="0"))


def test_command_line(exported, tmp_path, capsys):
    _, config, path, _ = exported
    if not config.conditional:
        pytest.skip("one command-line run (the conditional export) is enough")
    result = subprocess.run([PYTHON, "-m", "export.client", f"--saved_model_dir={path}", "--labels=0,1",
                             "--seed=3", f"--output_dir={tmp_path}"], cwd=ROOT, env=subprocess_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image_0.png", "image_1.png"]
    # The refusal through the command's `main` in this process (a refusal as a command, exit status 2 without a
    # traceback: test_a_full_batching_queue_is_one_clear_line).
    status, out, err = main_in_process(client, capsys, f"--saved_model_dir={path}", "--labels=7",
                                       f"--output_dir={tmp_path}")
    assert (status, out) == (2, "") and "labels must be class ids" in err


def test_model_config_template():
    template = (ROOT / "export" / "models.config.template").read_text()
    assert "${MODEL_NAME}" in template and "${MODEL_BASE_PATH}" in template
    filled = template.replace("${MODEL_NAME}", "sagan").replace("${MODEL_BASE_PATH}", "/models/sagan")
    config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2",
                                     reason="tensorflow-serving-api is not installed: template not parsed")
    from google.protobuf import text_format

    config = text_format.Parse(filled, config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("sagan", "/models/sagan", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 1


def test_class_name_requests():
    inputs = client.make_inputs("generate_by_name", seed=3, truncation=0.5, classes=["ring", "bar"])
    body = client.rest_body("generate_by_name", inputs)
    assert body == {"signature_name": "generate_by_name",
                    "inputs": {"classes": ["ring", "bar"], "seed": 3, "truncation": 0.5}}
    assert json.loads(json.dumps(body)) == body
    with pytest.raises(ServingError, match="either --classes .* or --labels"):
        client.make_inputs("generate_by_name", labels=[1], classes=["ring"])
    with pytest.raises(ServingError, match="go with the generate_by_name signature"):
        client.make_inputs("generate", classes=["ring"])
    with pytest.raises(ServingError, match="--classes must be comma-separated class names"):
        client.run(_flags(saved_model_dir="x", classes=" , "))
    with pytest.raises(ServingError, match="drop --signature=serving_default"):
        client.run(_flags(server="localhost:1", classes="ring", signature="serving_default"))


class _SavedModelRest(http.server.BaseHTTPRequestHandler):
    """TensorFlow Serving's REST predict API in front of a loaded SavedModel: columnar "inputs", outputs named
    (or the lone output bare), `_bytes` outputs base64-encoded, refused requests as HTTP 400 {"error": ...}."""

    loaded = None
    requests = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if body["signature_name"] not in self.loaded.signatures:
            self._reply(400, {"error": f"Serving signature key \"{body['signature_name']}\" not found."})
            return
        function = self.loaded.signatures[body["signature_name"]]
        specs = function.structured_input_signature[1]
        try:
            outputs = function(**{name: tf.constant(value, specs[name].dtype)
                                  for name, value in body["inputs"].items()})
        except tf.errors.InvalidArgumentError as error:
            self._reply(400, {"error": error.message})
            return
        encoded = {}
        for name, value in outputs.items():
            value = value.numpy()
            if name.endswith("_bytes"):
                encoded[name] = [{"b64": base64.b64encode(item).decode()} for item in value]
            elif value.dtype == object:
                encoded[name] = [item.decode() for item in value]
            else:
                encoded[name] = value.tolist()
        self._reply(200, {"outputs": encoded if len(encoded) > 1 else next(iter(encoded.values()))})

    _reply = _FakeServing._reply
    log_message = _FakeServing.log_message


def test_classes_by_name_over_rest_and_in_process(exported, tmp_path):
    _, config, path, loaded = exported
    if not config.conditional:
        with pytest.raises(ServingError, match="unconditional: it has no classes to name"):
            client.run(_flags(saved_model_dir=path, classes="ring", output_dir=str(tmp_path)))
        assert client.run(_flags(saved_model_dir=path, list_classes=True)) == []
        return
    _SavedModelRest.loaded, _SavedModelRest.requests = loaded, []
    server = http.server.HTTPServer(("127.0.0.1", 0), _SavedModelRest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        assert client.run(_flags(server=address, list_classes=True)) == list(CLASS_NAMES)
        rest = client.run(_flags(server=address, classes="stripes,bar,stripes", seed=6, output_dir=str(tmp_path / "r")))
        with pytest.raises(ServingError, match=r"HTTP 400.*\[Unknown class name:\] \[strpes\] \[closest valid names:\] "
                                               r"\[stripes"):
            client.run(_flags(server=address, classes="ring,strpes", output_dir=str(tmp_path / "bad")))
    finally:
        server.shutdown()
        server.server_close()
    assert _SavedModelRest.requests[0] == {"signature_name": "class_names", "inputs": {}}
    assert _SavedModelRest.requests[1] == {"signature_name": "limits", "inputs": {}}  # 3 images: within the cap?
    assert _SavedModelRest.requests[2] == {"signature_name": "generate_by_name", "inputs": {
        "classes": ["stripes", "bar", "stripes"], "seed": 6, "truncation": client.UNTRUNCATED}}
    in_process = client.run(_flags(saved_model_dir=path, classes="stripes,bar,stripes", seed=6,
                                   output_dir=str(tmp_path / "p")))
    expected = loaded.signatures["generate"](labels=tf.constant([3, 0, 3]), seed=tf.constant(6, tf.int64),
                                             truncation=tf.constant(np.inf))["images"].numpy()
    for rest_path, local_path, image in zip(rest, in_process, expected):
        np.testing.assert_array_equal(_png_pixels(rest_path), image)
        np.testing.assert_array_equal(_png_pixels(local_path), image)
    with pytest.raises(ServingError, match=r"\[Unknown class name:\] \[rign\] \[closest valid names:\] \[ring"):
        client.run(_flags(saved_model_dir=path, classes="rign", output_dir=str(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists()  # never a silent class 0
    assert client.run(_flags(saved_model_dir=path, list_classes=True)) == list(CLASS_NAMES)


def test_classes_by_name_over_grpc(exported, tmp_path):
    _, config, _, loaded = exported
    if not config.conditional:
        pytest.skip("unconditional exports have no class names")
    with grpc_server(loaded) as (address, received):
        names = client.run(_flags(server=address, grpc=True, list_classes=True))
        paths = client.run(_flags(server=address, grpc=True, classes="mirror,ring", seed=2, output_dir=str(tmp_path)))
    assert names == list(CLASS_NAMES)
    assert received[1].model_spec.signature_name == "limits"  # two images: the client reads the cap first
    request = received[2]
    assert request.model_spec.signature_name == "generate_by_name"
    assert [name.decode() for name in tf.make_ndarray(request.inputs["classes"])] == ["mirror", "ring"]
    expected = loaded.signatures["generate"](labels=tf.constant([1, 2]), seed=tf.constant(2, tf.int64),
                                             truncation=tf.constant(np.inf))["images"].numpy()
    for png_path, image in zip(paths, expected):
        np.testing.assert_array_equal(_png_pixels(png_path), image)


@contextlib.contextmanager
def rest_server(loaded):
    """`_SavedModelRest` on loopback in front of `loaded`; yields its address."""
    _SavedModelRest.loaded, _SavedModelRest.requests = loaded, []
    server = http.server.HTTPServer(("127.0.0.1", 0), _SavedModelRest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_more_images_than_the_cap_are_refused_before_sending(capped, tmp_path):
    config, path, loaded = capped
    over, _ = _request_args(config, CAP + 1)
    at, signature_args = _request_args(config, CAP)
    message = (f"This request asks for {CAP + 1} images and the model takes at most {CAP} per request (its "
               "max_batch_size, read from its limits signature); nothing was sent.")
    with rest_server(loaded) as address:
        with pytest.raises(ServingError, match=re.escape(message)):
            client.run(_flags(server=address, output_dir=str(tmp_path / "over"), **over))
        assert _SavedModelRest.requests == [{"signature_name": "limits", "inputs": {}}]  # the request never left
        paths = client.run(_flags(server=address, seed=5, output_dir=str(tmp_path / "rest"), **at))
    assert [body["signature_name"] for body in _SavedModelRest.requests] == ["limits", "limits", "generate"]
    expected = loaded.signatures["generate"](seed=tf.constant(5, tf.int64), truncation=tf.constant(np.inf),
                                             **signature_args)["images"].numpy()
    assert len(paths) == CAP
    for png_path, image in zip(paths, expected):
        np.testing.assert_array_equal(_png_pixels(png_path), image)
    for signature in ("generate", "serving_default"):
        with pytest.raises(ServingError, match=re.escape(message)):
            client.run(_flags(saved_model_dir=path, signature=signature, output_dir=str(tmp_path / "over"), **over))
    if config.conditional:
        classes = ",".join(CLASS_NAMES[label % 4] for label in range(CAP + 1))
        with pytest.raises(ServingError, match=re.escape(message)):
            client.run(_flags(saved_model_dir=path, classes=classes, output_dir=str(tmp_path / "over")))
        with grpc_server(loaded) as (address, received):
            with pytest.raises(ServingError, match=re.escape(message)):
                client.run(_flags(server=address, grpc=True, output_dir=str(tmp_path / "over"), **over))
        assert [request.model_spec.signature_name for request in received] == ["limits"]
    assert not (tmp_path / "over").exists()


def test_an_export_from_before_the_cap_still_serves(old_export, tmp_path):
    # No limits signature to read: the client sends the request as it is and the model answers it.
    config, path, loaded = old_export
    assert "limits" not in loaded.signatures
    labels = ",".join(str(label % 4) for label in range(CAP + 2))
    expected = loaded.signatures["generate"](labels=tf.constant([label % 4 for label in range(CAP + 2)]),
                                             seed=tf.constant(1, tf.int64), truncation=tf.constant(np.inf))
    expected = expected["images"].numpy()
    in_process = client.run(_flags(saved_model_dir=path, labels=labels, seed=1, output_dir=str(tmp_path / "p")))
    with rest_server(loaded) as address:
        rest = client.run(_flags(server=address, labels=labels, seed=1, output_dir=str(tmp_path / "r")))
    # The server answered the limits query 400 ("not found"), as TensorFlow Serving does for an unknown signature.
    assert [body["signature_name"] for body in _SavedModelRest.requests] == ["limits", "generate"]
    assert len(in_process) == len(rest) == CAP + 2
    for local_path, rest_path, image in zip(in_process, rest, expected):
        np.testing.assert_array_equal(_png_pixels(local_path), image)
        np.testing.assert_array_equal(_png_pixels(rest_path), image)


def test_a_class_name_longer_than_the_models_is_refused_before_sending(capped, tmp_path):
    config, path, loaded = capped
    if not config.conditional:
        pytest.skip("unconditional exports take no class names")
    long_name = "x" * 5000
    message = (f"Class name 1 of --classes ('{'x' * 40}...') has 5000 bytes, and the longest class name of the model "
               "has 7 (its max_class_name_length, read from its limits signature), so it names no class; nothing was "
               "sent.")
    with rest_server(loaded) as address:
        with pytest.raises(ServingError, match=re.escape(message)):
            client.run(_flags(server=address, classes=f"ring,{long_name}", output_dir=str(tmp_path / "over")))
        # One name is checked too: a request by name always reads the limits first.
        with pytest.raises(ServingError, match=r"Class name 0 of --classes \('stripes!'\) has 8 bytes"):
            client.run(_flags(server=address, classes="stripes!", output_dir=str(tmp_path / "over")))
        assert _SavedModelRest.requests == [{"signature_name": "limits", "inputs": {}}] * 2  # nothing else left
        paths = client.run(_flags(server=address, classes="stripes", seed=4, output_dir=str(tmp_path / "rest")))
    assert [body["signature_name"] for body in _SavedModelRest.requests] == ["limits"] * 3 + ["generate_by_name"]
    expected = loaded.signatures["generate"](labels=tf.constant([3]), seed=tf.constant(4, tf.int64),
                                             truncation=tf.constant(np.inf))["images"].numpy()
    np.testing.assert_array_equal(_png_pixels(paths[0]), expected[0])
    with pytest.raises(ServingError, match=re.escape(message)):
        client.run(_flags(saved_model_dir=path, classes=f"ring,{long_name}", output_dir=str(tmp_path / "over")))
    with grpc_server(loaded) as (address, received):
        with pytest.raises(ServingError, match=re.escape(message)):
            client.run(_flags(server=address, grpc=True, classes=f"ring,{long_name}",
                              output_dir=str(tmp_path / "over")))
    assert [request.model_spec.signature_name for request in received] == ["limits"]
    assert not (tmp_path / "over").exists()


def test_an_export_from_before_the_name_bound_still_serves(export_before_name_bound, tmp_path):
    # Its limits answer the cap alone (over REST, as the lone output), and its assets have no max_class_name_length:
    # the client still checks the cap, and sends names of any length for the model to answer.
    config, path, loaded = export_before_name_bound
    assert set(loaded.signatures["limits"]()) == {"max_batch_size"}
    with open(os.path.join(path, "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert info["max_batch_size"] == CAP and "max_class_name_length" not in info
    unknown = "stripes" + "x" * 50
    expected = loaded.signatures["generate"](labels=tf.constant([3, 0]), seed=tf.constant(2, tf.int64),
                                             truncation=tf.constant(np.inf))["images"].numpy()
    with rest_server(loaded) as address:
        rest = client.run(_flags(server=address, classes="stripes,bar", seed=2, output_dir=str(tmp_path / "r")))
        with pytest.raises(ServingError, match=rf"HTTP 400.*\[Unknown class name:\] \[{unknown}\] \[closest valid "
                                               r"names:\] \[stripes"):
            client.run(_flags(server=address, classes=unknown, output_dir=str(tmp_path / "bad")))
        with pytest.raises(ServingError, match=f"asks for {CAP + 1} images and the model takes at most {CAP}"):
            client.run(_flags(server=address, classes=",".join(["bar"] * (CAP + 1)), output_dir=str(tmp_path / "bad")))
    assert [body["signature_name"] for body in _SavedModelRest.requests] == [
        "limits", "generate_by_name", "limits", "generate_by_name", "limits"]
    for rest_path, image in zip(rest, expected):
        np.testing.assert_array_equal(_png_pixels(rest_path), image)
    # In process, the limits come back as a dict without the bound: the name goes to the model too.
    with pytest.raises(ServingError, match=rf"\[Unknown class name:\] \[{unknown}\]"):
        client.run(_flags(saved_model_dir=path, classes=unknown, output_dir=str(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists()


def test_a_full_batching_queue_is_one_clear_line(fake_server, tmp_path, exported):
    with pytest.raises(ServingError, match=r"HTTP 503\): The batch scheduling queue to which this task was submitted "
                                           r"is full\. The server is busy: .* Retry later"):
        client.run(_flags(server=fake_server, labels="98", output_dir=str(tmp_path)))
    result = subprocess.run([PYTHON, "-m", "export.client", f"--server={fake_server}", "--labels=98",
                             f"--output_dir={tmp_path}"], cwd=ROOT, env=subprocess_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "HTTP 503" in errors[0] and "Retry later" in errors[0]
    assert not list(tmp_path.iterdir())
    _, config, _, loaded = exported
    if not config.conditional:
        return
    with grpc_server(loaded, refuse=("UNAVAILABLE", "The batch scheduling queue to which this task was submitted "
                                                    "is full")) as (address, _):
        with pytest.raises(ServingError, match=r"failed \(UNAVAILABLE\): The batch scheduling queue .* is full\. The "
                                               r"server is busy"):
            client.run(_flags(server=address, grpc=True, labels="1", output_dir=str(tmp_path)))


#: The fields of TensorFlow Serving's BatchingParameters (tensorflow_serving/servables/tensorflow/
#: session_bundle_config.proto) that take one wrapped number; the proto is not in tensorflow-serving-api.
_BATCHING_FIELDS = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                    "max_execution_batch_size"}


def test_batching_parameters_template_is_filled_with_the_cap(capped, tmp_path):
    _, path, loaded = capped
    with open(os.path.join(path, "assets", serving.EXPORT_INFO_ASSET)) as f:
        cap = json.load(f)["max_batch_size"]
    environment = {**subprocess_environment(), "MODEL_NAME": "sagan", "MODEL_BASE_PATH": "/models/sagan",
                   "MAX_BATCH_SIZE": str(cap)}
    # The README's envsubst step, run as written.
    result = subprocess.run(["bash", "-c", f"envsubst < {ROOT}/export/models.config.template > models.config && "
                             f"envsubst < {ROOT}/export/batching_parameters.template > batching_parameters.config"],
                            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    if result.returncode == 127 or "envsubst: command not found" in result.stderr:
        pytest.skip("envsubst (GNU gettext) is not installed")
    assert result.returncode == 0, result.stderr
    fields = {}
    for line in (tmp_path / "batching_parameters.config").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
            assert match, line
            fields[match.group(1)] = int(match.group(2))
    assert set(fields) <= _BATCHING_FIELDS
    assert fields["max_batch_size"] == cap == int(loaded.signatures["limits"]()["max_batch_size"])
    assert fields["max_enqueued_batches"] >= 1 and fields["num_batch_threads"] >= 1
    filled = (tmp_path / "models.config").read_text()
    assert 'name: "sagan"' in filled and 'base_path: "/models/sagan"' in filled
