"""Extracts from botocore's service models the shapes sagedock validates requests with.

sagedock checks every control-plane request and every runtime header as AWS does (types,
required members, ranges, lengths, patterns, enums), driven by the same data botocore ships.
This script writes the part of that data sagedock needs (the input shapes of the operations
it serves, without documentation) to src/botocore/*.json:

    python harness/clients/extract_shapes.py          # rewrite the files
    python harness/clients/extract_shapes.py --check  # exit 1 when they differ

test_botocore_facts.py runs the check against the pinned botocore.
"""

import json
import pathlib
import sys

import botocore.session

ROOT = pathlib.Path(__file__).resolve().parents[2]

SERVICES = {
    "sagemaker": [
        "CreateModel", "DescribeModel", "ListModels", "DeleteModel",
        "CreateEndpointConfig", "DescribeEndpointConfig", "ListEndpointConfigs",
        "DeleteEndpointConfig",
        "CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "DeleteEndpoint",
        "UpdateEndpoint", "UpdateEndpointWeightsAndCapacities",
        "AddTags", "ListTags", "DeleteTags",
        "CreateTrainingJob", "DescribeTrainingJob", "ListTrainingJobs", "StopTrainingJob",
        "CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob",
        "ListHyperParameterTuningJobs", "ListTrainingJobsForHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
        "CreateTransformJob", "DescribeTransformJob", "ListTransformJobs", "StopTransformJob",
    ],
    "sagemaker-runtime": [
        "InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream",
    ],
}

# What validation needs of a shape; everything else (documentation, flags) is left out.
SHAPE_KEYS = ("type", "required", "members", "member", "key", "value", "min", "max",
              "pattern", "enum")
MEMBER_KEYS = ("shape", "location", "locationName")


def extract(service, operations):
    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model(service, "service-2")
    shapes = model["shapes"]
    out = {}

    def walk(name):
        if name in out:
            return
        shape = shapes[name]
        kept = {k: shape[k] for k in SHAPE_KEYS if k in shape}
        if "members" in kept:
            kept["members"] = {
                m: {k: v[k] for k in MEMBER_KEYS if k in v} for m, v in kept["members"].items()
            }
        for key in ("member", "key", "value"):
            if key in kept:
                kept[key] = {"shape": kept[key]["shape"]}
        out[name] = kept
        for member in kept.get("members", {}).values():
            walk(member["shape"])
        for key in ("member", "key", "value"):
            if key in kept:
                walk(kept[key]["shape"])

    inputs = {}
    for op in operations:
        input_shape = model["operations"][op]["input"]["shape"]
        inputs[op] = input_shape
        walk(input_shape)
    return {
        "botocore": botocore.__version__,
        "service": service,
        "apiVersion": model["metadata"]["apiVersion"],
        "operations": inputs,
        "shapes": dict(sorted(out.items())),
    }


def render(data):
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main(check):
    stale = []
    for service, operations in SERVICES.items():
        path = ROOT / "src" / "botocore" / f"{service}.json"
        text = render(extract(service, operations))
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path} ({len(text)} bytes)")
    if stale:
        print("differ from botocore " + botocore.__version__ + ": " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
