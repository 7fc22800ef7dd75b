//! Reading the signatures of a TensorFlow SavedModel (`saved_model.pb`).
//!
//! Only the messages on the path to the signatures are declared (field numbers from
//! TensorFlow's `saved_model.proto`, `meta_graph.proto`, `tensor_shape.proto` and
//! `types.proto`); everything else (the graph, the object graph) is skipped by the
//! decoder as unknown fields. TensorFlow's internal `__saved_model_init_op` signature is
//! left out of summaries.

use std::collections::BTreeMap;
use std::fmt;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<MetaInfoDef>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub signature_def: BTreeMap<String, SignatureDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetaInfoDef {
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(string, tag = "5")]
    pub tensorflow_version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct SignatureDef {
    #[prost(btree_map = "string, message", tag = "1")]
    pub inputs: BTreeMap<String, TensorInfo>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub outputs: BTreeMap<String, TensorInfo>,
    #[prost(string, tag = "3")]
    pub method_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorInfo {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, tag = "2")]
    pub dtype: i32,
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Present for sparse tensors (contents not needed here).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub coo_sparse: Option<Vec<u8>>,
    /// Present for composite tensors (ragged, ...).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub composite_tensor: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
    #[prost(string, tag = "2")]
    pub name: String,
}

/// TensorFlow's name for the signature TF2 adds to run initialisers.
const INIT_OP_SIGNATURE: &str = "__saved_model_init_op";

/// One tensor of a signature, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub dtype: String,
    /// `None` when the rank is unknown; -1 for an unknown dimension.
    pub shape: Option<Vec<i64>>,
}

impl fmt::Display for TensorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            None => write!(f, "{}: {}[?]", self.name, self.dtype),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
                write!(f, "{}: {}[{}]", self.name, self.dtype, dims.join(","))
            }
        }
    }
}

/// One signature of a SavedModel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureSummary {
    pub name: String,
    pub method: String,
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
}

impl fmt::Display for SignatureSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ts: &[TensorSummary]| {
            ts.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "{}: inputs {{{}}} -> outputs {{{}}}",
            self.name,
            list(&self.inputs),
            list(&self.outputs)
        )
    }
}

/// The serving meta graph of a SavedModel, summarised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SavedModelSummary {
    pub tags: Vec<String>,
    pub tensorflow_version: String,
    pub signatures: Vec<SignatureSummary>,
}

/// Decodes `saved_model.pb` bytes and summarises the meta graph tagged `serve` (or the
/// first one when none is).
pub fn summarize(bytes: &[u8]) -> Result<SavedModelSummary, prost::DecodeError> {
    let model = SavedModel::decode(bytes)?;
    let serving = model
        .meta_graphs
        .iter()
        .find(|m| {
            m.meta_info_def
                .as_ref()
                .is_some_and(|i| i.tags.iter().any(|t| t == "serve"))
        })
        .or_else(|| model.meta_graphs.first());
    let Some(graph) = serving else {
        return Ok(SavedModelSummary {
            tags: Vec::new(),
            tensorflow_version: String::new(),
            signatures: Vec::new(),
        });
    };
    let info = graph.meta_info_def.clone().unwrap_or_default();
    let signatures = graph
        .signature_def
        .iter()
        .filter(|(name, _)| name.as_str() != INIT_OP_SIGNATURE)
        .map(|(name, sig)| SignatureSummary {
            name: name.clone(),
            method: sig.method_name.clone(),
            inputs: tensors(&sig.inputs),
            outputs: tensors(&sig.outputs),
        })
        .collect();
    Ok(SavedModelSummary {
        tags: info.tags,
        tensorflow_version: info.tensorflow_version,
        signatures,
    })
}

fn tensors(map: &BTreeMap<String, TensorInfo>) -> Vec<TensorSummary> {
    map.iter()
        .map(|(name, info)| TensorSummary {
            name: name.clone(),
            dtype: dtype_name(info.dtype).to_string(),
            shape: match &info.tensor_shape {
                Some(shape) if !shape.unknown_rank => {
                    Some(shape.dim.iter().map(|d| d.size).collect())
                }
                Some(_) => None,
                None => None,
            },
        })
        .collect()
}

/// The NumPy-style name of a TensorFlow `DataType` value (`_REF` variants included).
pub fn dtype_name(value: i32) -> &'static str {
    const NAMES: [&str; 31] = [
        "invalid",
        "float32",
        "float64",
        "int32",
        "uint8",
        "int16",
        "int8",
        "string",
        "complex64",
        "int64",
        "bool",
        "qint8",
        "quint8",
        "qint32",
        "bfloat16",
        "qint16",
        "quint16",
        "uint16",
        "complex128",
        "float16",
        "resource",
        "variant",
        "uint32",
        "uint64",
        "float8_e5m2",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e4m3b11fnuz",
        "float8_e5m2fnuz",
        "int4",
        "uint4",
    ];
    let base = if value > 100 { value - 100 } else { value };
    usize::try_from(base)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dtype: i32, dims: &[i64]) -> TensorInfo {
        TensorInfo {
            name: Some("t:0".into()),
            dtype,
            tensor_shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&size| Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            coo_sparse: None,
            composite_tensor: None,
        }
    }

    #[test]
    fn summarises_the_serving_graph_and_hides_the_init_op() {
        let mut sig = SignatureDef {
            method_name: "tensorflow/serving/predict".into(),
            ..Default::default()
        };
        sig.inputs.insert("x".into(), tensor(1, &[-1, 4]));
        sig.outputs.insert("y".into(), tensor(9, &[-1]));
        let mut graph = MetaGraphDef {
            meta_info_def: Some(MetaInfoDef {
                tags: vec!["serve".into()],
                tensorflow_version: "2.21.0".into(),
            }),
            ..Default::default()
        };
        graph.signature_def.insert("serving_default".into(), sig);
        graph
            .signature_def
            .insert(INIT_OP_SIGNATURE.into(), SignatureDef::default());
        let bytes = SavedModel {
            saved_model_schema_version: 1,
            meta_graphs: vec![graph],
        }
        .encode_to_vec();
        let summary = summarize(&bytes).unwrap();
        assert_eq!(summary.signatures.len(), 1);
        assert_eq!(
            summary.signatures[0].to_string(),
            "serving_default: inputs {x: float32[-1,4]} -> outputs {y: int64[-1]}"
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(summarize(b"\x0a\xff\xff\xff\xff\x0f").is_err());
    }

    #[test]
    fn dtype_names_cover_ref_types() {
        assert_eq!(dtype_name(1), "float32");
        assert_eq!(dtype_name(101), "float32");
        assert_eq!(dtype_name(7), "string");
        assert_eq!(dtype_name(999), "unknown");
    }
}
