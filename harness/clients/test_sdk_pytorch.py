"""PyTorch as a notebook deploys it, with nothing but the lines `sagedock up` prints:
`PyTorchModel(model_data, entry_point="inference.py", framework_version=...)` (the SDK
repacks the script into the model under code/ and names AWS's `pytorch-inference` image,
which the image map runs as sagedock/pytorch: TorchServe and the SageMaker PyTorch
inference toolkit), `deploy()`, `predict()`; and a TorchScript model with no script,
served by the toolkit's default handlers. The model is made by the image's own torch
(harness/images/pytorch/make_model.py): a Linear(3, 1) with weights [1, 2, 3] and bias
0.5, so [a, b, c] predicts a + 2b + 3c + 0.5.
"""

import subprocess


from support import require_image
from test_env_only import proxy, run_notebook, up  # noqa: F401 (fixtures)

IMAGE = "sagedock/pytorch:latest"

NOTEBOOK = r'''
import json, tarfile
import boto3, sagemaker
from sagemaker.pytorch import PyTorchModel
from sagemaker.serializers import JSONSerializer
from sagemaker.deserializers import JSONDeserializer

role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session()
sm = boto3.client("sagemaker")
with tarfile.open("model.tar.gz", "w:gz") as tar:
    tar.add("made/model.pt", arcname="model.pt")
model_data = session.upload_data("model.tar.gz", key_prefix="pytorch/linear")

def serve(model):
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", wait=False,
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=predictor.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    except Exception:
        raise SystemExit(sm.describe_endpoint(EndpointName=predictor.endpoint_name)["FailureReason"])
    answer = predictor.predict([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    image = sm.describe_model(ModelName=model.name)["PrimaryContainer"]["Image"]
    predictor.delete_endpoint()
    return answer, image

custom, image = serve(PyTorchModel(model_data=model_data, role=role, entry_point="inference.py",
                                   source_dir="made/code", framework_version="1.13", py_version="py39"))
default, _ = serve(PyTorchModel(model_data=model_data, role=role, framework_version="1.13",
                                py_version="py39"))
print(json.dumps({"custom": custom, "default": default, "image": image}))
'''


def test_a_pytorch_model_deploys_with_its_script_and_with_the_default_handlers(up, proxy, tmp_path):  # noqa: F811
    require_image(IMAGE)
    exports, _ = up
    made = tmp_path / "made"
    made.mkdir()
    subprocess.run(["docker", "run", "--rm", "-v", f"{made}:/out", IMAGE,
                    "sagedock-pytorch-make-model", "/out", "--code"], check=True, timeout=120)
    result, _ = run_notebook(exports, proxy, tmp_path, NOTEBOOK)
    assert result["image"].endswith("/pytorch-inference:1.13-cpu-py39"), result["image"]
    # The entry point's own functions answered (its output_fn names itself)...
    assert result["custom"] == {"predictions": [6.5, 0.5], "handler": "inference.py"}, result
    # ...and without one, the toolkit's defaults: torch.jit.load, JSON in, JSON out.
    assert result["default"] == [[6.5], [0.5]], result
    assert proxy.seen == [], f"requests tried to leave the machine: {proxy.seen}"
