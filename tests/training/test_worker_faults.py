"""training.worker_faults without a cluster: which errors mean a lost worker, and the paragraph that reports one (two
loopback workers under real faults: tests/training/test_multi_worker.py)."""

import tensorflow as tf

from sagan_tf import cli
from sagan_tf.errors import RETRY_EXIT_STATUS, UsageError, WorkerLostError
from training import worker_faults

# As the chief of two loopback workers raised it, 0.2 s after worker 1 was killed with SIGKILL (TF 2.21).
KILLED_PEER = ("{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/replica:0/task:0/"
               "device:CPU:0}} Collective ops is aborted by: recvmsg:Connection reset by peer\n"
               "Additional GRPC error information from remote target /job:worker/replica:0/task:1 while calling "
               "/tensorflow.WorkerService/RecvBuf:\n"
               ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg:Connection reset by peer"}\n'
               "The error could be from a previous operation. Restart your program to reset. [Op:CollectiveReduceV2]")
# As worker 1 raised it when the chief was killed.
KILLED_CHIEF = ("{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/replica:0/task:1/"
                "device:CPU:0}} Collective ops is aborted by: Socket closed\n"
                "Additional GRPC error information from remote target /job:worker/replica:0/task:0 while calling "
                "/tensorflow.WorkerService/RecvBuf:\n"
                ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"Socket closed"}')


def test_lost_peer_errors_are_told_from_others():
    assert worker_faults.is_lost_worker(tf.errors.UnavailableError(None, None, KILLED_PEER))
    assert worker_faults.is_lost_worker(tf.errors.AbortedError(None, None, "abort"))
    # A collective aborted because a peer went away can surface as another type, e.g. in the step after.
    assert worker_faults.is_lost_worker(tf.errors.InternalError(None, None, "Collective ops is aborted by: ..."))
    assert not worker_faults.is_lost_worker(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes"))
    assert not worker_faults.is_lost_worker(ValueError("Connection reset"))


def test_the_lost_task_is_the_one_named_that_is_not_this_one():
    assert worker_faults.lost_tasks(KILLED_PEER, "worker 0") == ["worker 1"]
    assert worker_faults.lost_tasks(KILLED_CHIEF, "worker 1") == ["worker 0"]
    assert worker_faults.lost_tasks("Connection reset by peer", "worker 0") == []


def test_a_lost_worker_is_one_paragraph_with_the_checkpoint_to_resume_from_and_status_138(capsys):
    error = worker_faults.lost_worker_error(tf.errors.UnavailableError(None, None, KILLED_PEER), "worker 0",
                                            "runs/x/checkpoints/ckpt-100")
    assert isinstance(error, WorkerLostError) and not isinstance(error, UsageError)
    assert error.lost_tasks == ["worker 1"] and error.last_checkpoint == "runs/x/checkpoints/ckpt-100"
    assert str(error) == (
        "Lost worker 1 of this multi-worker run (killed, crashed or unreachable); worker 0 stopped. Relaunch every "
        "worker with the same flags and TF_CONFIG: the run resumes from runs/x/checkpoints/ckpt-100. (TensorFlow "
        "reported UnavailableError: {{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:"
        "worker/replica:0/task:0/device:CPU:0}} Collective ops is aborted by: recvmsg:Connection reset by peer)")
    unnamed = worker_faults.lost_worker_error(tf.errors.AbortedError(None, None, "x" * 1000), "worker 1", None)
    assert str(unnamed).startswith("Lost another worker of this multi-worker run")
    assert "no checkpoint was written yet, so the run starts over" in str(unnamed) and "x" * 297 + "...)" in str(
        unnamed)

    @cli.main_wrapper
    def main(argv):
        raise error

    assert main(["prog"]) == WorkerLostError.exit_status == RETRY_EXIT_STATUS == 138  # retried by Kubeflow too
    assert capsys.readouterr().err == f"Error: {error}\n"
