"""Content types and data: the channels' files for training, the request bodies for serving,
read as SageMaker's XGBoost container (1.7-1) reads them.

Training data: CSV has the label in the first column, no header, numbers only; LIBSVM is
`label index:value ...` with the indices as written. Files whose names start with `.` or
`_` are skipped, folders are read three levels deep. Request bodies: CSV rows without the
label, LIBSVM (a label, if present, is ignored), or RecordIO-protobuf records.
"""

import cgi
import csv
import io
import os

import numpy as np
import xgboost as xgb
from scipy.sparse import csr_matrix, vstack

from . import UserError

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

VALID_CONTENT_TYPES = [CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm",
                       "text/x-libsvm", "application/x-parquet",
                       "application/x-recordio-protobuf"]
MAX_FOLDER_DEPTH = 3


def content_type(value):
    """The format a channel's ContentType (or a request's Content-Type) names: csv, libsvm,
    parquet or recordio-protobuf. None means libsvm, as in the container."""
    if value is None:
        return LIBSVM
    kind, params = cgi.parse_header(value.lower())
    if kind in (CSV, "text/csv"):
        if params.get("label_size", "1") != "1":
            raise UserError("{} is not an accepted csv ContentType. Optional parameter "
                            "label_size must be equal to 1".format(value))
        return CSV
    if kind in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if kind in (PARQUET, "application/x-parquet"):
        return PARQUET
    if kind in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError("{} is not an accepted ContentType: {}.".format(value, ", ".join(VALID_CONTENT_TYPES)))


def _files(path):
    """The data files of a channel folder, in name order."""
    found = []
    base_depth = path.rstrip("/").count("/")
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        if root.count("/") - base_depth >= MAX_FOLDER_DEPTH:
            dirs[:] = []
        for name in sorted(names):
            if name.startswith("."):
                raise UserError("Hidden file found in the data path! Remove that before training.")
            if not name.startswith("_"):
                found.append(os.path.join(root, name))
    return found


def _delimiter(line):
    try:
        sniffed = csv.Sniffer().sniff(line[:512]).delimiter
    except csv.Error:
        raise UserError("Could not determine delimiter on line {}".format(line[:50]))
    return "," if sniffed.isalnum() else sniffed


def _first_line(file):
    with open(file, "r", errors="replace") as f:
        return f.readline().strip()


def _read_csv(files, weights):
    rows = []
    for file in files:
        first = _first_line(file)
        if not first:
            continue
        delimiter = _delimiter(first)
        try:
            block = np.loadtxt(file, delimiter=delimiter, ndmin=2, dtype=np.float32)
        except ValueError as e:
            raise UserError("Failed to load csv data with exception:\n{}".format(e))
        rows.append(block)
    if not rows:
        return None
    data = np.vstack(rows)
    first_feature = 2 if weights else 1
    if data.shape[1] <= first_feature:
        raise UserError("Got input data without labels. Please check the input data set. "
                        "If training job is running on multiple instances, please switch to "
                        "using single instance if number of records in the data set is less "
                        "than number of workers (16 * number of instance) in the cluster.")
    matrix = xgb.DMatrix(data[:, first_feature:], label=data[:, 0])
    if weights:
        matrix.set_weight(data[:, 1])
    return matrix


def _libsvm_rows(text, file=None):
    """(labels, csr matrix) of LIBSVM text; indices as written (column 3 is `3:`)."""
    labels, rows, cols, values = [], [], [], []
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        row = len(labels)
        start = 0
        if ":" not in tokens[0]:
            labels.append(float(tokens[0]))
            start = 1
        else:
            labels.append(float("nan"))
        for token in tokens[start:]:
            index, value = token.split(":", 1)
            rows.append(row)
            cols.append(int(index))
            values.append(float(value))
    width = max(cols) + 1 if cols else 0
    return np.array(labels), csr_matrix((values, (rows, cols)), shape=(len(labels), width))


def _is_libsvm_line(line):
    """`label index:value ...`: a number, then integer:number pairs."""
    tokens = line.split("#", 1)[0].split()
    try:
        float(tokens[0])
        for token in tokens[1:]:
            index, value = token.split(":", 1)
            int(index), float(value)
    except (IndexError, ValueError):
        return False
    return True


def _read_libsvm(files):
    labels, blocks = [], []
    for file in files:
        first = _first_line(file)
        if not first:
            continue
        if not _is_libsvm_line(first):
            raise UserError("First line '{}...' of file '{}' is not 'LIBSVM' format. Please "
                            "ensure the file is in 'LIBSVM' format.".format(first[:50], os.path.basename(file)))
        with open(file) as f:
            try:
                file_labels, block = _libsvm_rows(f.read())
            except ValueError as e:
                raise UserError("Failed to load libsvm data with exception:\n{}".format(e))
        labels.append(file_labels)
        blocks.append(block)
    if not blocks:
        return None
    width = max(b.shape[1] for b in blocks)
    blocks = [csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], width)) for b in blocks]
    return xgb.DMatrix(vstack(blocks).tocsr(), label=np.concatenate(labels))


def read_channel(path, kind, weights=False):
    """The DMatrix of a channel folder, None when it holds no data."""
    files = _files(path)
    if kind == CSV:
        return _read_csv(files, weights)
    if kind == LIBSVM:
        return _read_libsvm(files)
    raise UserError("ContentType {} is not read by sagedock's XGBoost image: give text/csv or "
                    "text/libsvm".format(kind))


def parse_request(body, value):
    """(DMatrix, format) of a request body (bytes, or text as the containers library hands
    text types to an input_fn) of Content-Type `value`; RuntimeError says why not."""
    kind = content_type(value)
    text = None
    if kind in (CSV, LIBSVM):
        text = (body.decode("utf-8") if isinstance(body, bytes) else body).strip()
    if kind == CSV:
        try:
            delimiter = _delimiter(text.split("\n")[0])
            rows = [[float(v) if v.strip() else np.nan for v in line.split(delimiter)]
                    for line in text.split("\n")]
            return xgb.DMatrix(np.array(rows, dtype=float)), kind
        except Exception as e:
            raise RuntimeError("Loading csv data failed with Exception, please ensure data is in "
                               "csv format:\n {}\n {}".format(type(e), e))
    if kind == LIBSVM:
        try:
            return xgb.DMatrix(_libsvm_rows(text)[1]), kind
        except Exception as e:
            raise RuntimeError("Loading libsvm data failed with Exception, please ensure data is "
                               "in libsvm format:\n {}\n {}".format(type(e), e))
    if kind == RECORDIO_PROTOBUF:
        try:
            return xgb.DMatrix(_recordio_features(body)), kind
        except Exception as e:
            raise RuntimeError("Loading recordio-protobuf data failed with Exception, please "
                               "ensure data is in recordio-protobuf format: {} {}".format(type(e), e))
    raise RuntimeError("Content-type {} is not supported.".format(value))


def _recordio_features(body):
    """The `values` feature of each Record in a RecordIO body, as rows of a matrix."""
    from sagemaker_containers import _recordio, record_pb2

    rows = []
    for raw in _recordio._read_recordio(io.BytesIO(body)):
        record = record_pb2.Record()
        record.ParseFromString(raw)
        tensor = record.features["values"]
        if tensor.HasField("float32_tensor"):
            t = tensor.float32_tensor
        elif tensor.HasField("float64_tensor"):
            t = tensor.float64_tensor
        else:
            t = tensor.int32_tensor
        if t.keys:
            width = t.shape[0] if t.shape else max(t.keys) + 1
            row = np.full(width, np.nan)
            row[list(t.keys)] = list(t.values)
        else:
            row = np.array(list(t.values), dtype=float)
        rows.append(row)
    return np.vstack(rows)
