//! Tensor data: initializers and constants decoded and checked against
//! their dims; external data read from beside the model file.

use super::*;

/// Moves external initializer data into `raw_data`.
pub(super) fn load_external(m: &mut ModelProto, dir: &Path, source: &str) -> Result<()> {
    let Some(graph) = m.graph.as_mut() else {
        return Ok(());
    };
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for t in &mut graph.initializer {
        if t.data_location != 1 && t.external_data.is_empty() {
            continue;
        }
        let what = format!("tensor '{}'", t.name);
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
        };
        let location = get("location").ok_or_else(|| {
            malformed(
                source,
                format!("{what}: external data without a 'location'"),
            )
        })?;
        let rel = Path::new(&location);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(malformed(
                source,
                format!("{what}: external data location '{location}' must be a file name in the model's folder"),
            ));
        }
        let number = |k: &str| -> Result<Option<usize>> {
            get(k)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        malformed(
                            source,
                            format!("{what}: external data '{k}' is '{v}', expected a byte count"),
                        )
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        if !files.contains_key(&location) {
            let p = dir.join(rel);
            let bytes = std::fs::read(&p).map_err(|e| OnnxError::Io {
                path: p.display().to_string(),
                msg: format!("{e} (external data of {what} in {source})"),
            })?;
            files.insert(location.clone(), bytes);
        }
        let file = &files[&location];
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(file.len()),
        };
        let data = end
            .filter(|&e| e <= file.len() && offset <= e)
            .map(|e| &file[offset..e])
            .ok_or_else(|| {
                let range = match length {
                    Some(l) => format!("bytes {offset}..{}", offset.saturating_add(l)),
                    None => format!("bytes from {offset} on"),
                };
                malformed(
                    source,
                    format!(
                        "{what}: external data ({range}) lies outside {} ({} bytes)",
                        dir.join(rel).display(),
                        file.len()
                    ),
                )
            })?;
        t.raw_data = data.to_vec();
        t.external_data.clear();
        t.data_location = 0;
    }
    Ok(())
}

pub(super) fn malformed(path: &str, msg: impl Into<String>) -> OnnxError {
    OnnxError::Malformed {
        path: path.into(),
        msg: msg.into(),
    }
}

/// A tensor's data as f32 or i64, checked against its dims.
pub(super) fn decode_tensor(path: &str, t: &TensorProto) -> Result<Const> {
    let what = format!("tensor '{}'", t.name);
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(malformed(
            path,
            format!("{what}: data in an external file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| malformed(path, format!("{what}: negative dimension in {:?}", t.dims)))?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= 1 << 32)
        .ok_or_else(|| malformed(path, format!("{what}: dims {:?} too large", t.dims)))?;
    let count = |found: usize, kind: &str| -> Result<()> {
        if found == n {
            Ok(())
        } else {
            Err(malformed(
                path,
                format!("{what}: dims {dims:?} need {n} {kind} values, the data holds {found}"),
            ))
        }
    };
    let raw = !t.raw_data.is_empty() || n == 0;
    let raw_len = |size: usize| -> Result<()> {
        if t.raw_data.len() == n * size {
            Ok(())
        } else {
            Err(malformed(
                path,
                format!(
                    "{what}: dims {dims:?} need {} bytes of raw_data, found {}",
                    n * size,
                    t.raw_data.len()
                ),
            ))
        }
    };
    match t.data_type {
        proto::FLOAT => {
            let v: Vec<f32> = if raw {
                raw_len(4)?;
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                count(t.float_data.len(), "float")?;
                t.float_data.clone()
            };
            Ok(Const::F32(dims, v))
        }
        proto::DOUBLE => {
            let v: Vec<f32> = if raw {
                raw_len(8)?;
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect()
            } else {
                count(t.double_data.len(), "double")?;
                t.double_data.iter().map(|&d| d as f32).collect()
            };
            Ok(Const::F32(dims, v))
        }
        proto::INT64 => {
            let v: Vec<i64> = if raw {
                raw_len(8)?;
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect()
            } else {
                count(t.int64_data.len(), "int64")?;
                t.int64_data.clone()
            };
            Ok(Const::I64(dims, v))
        }
        proto::INT32 => {
            let v: Vec<i64> = if raw {
                raw_len(4)?;
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64)
                    .collect()
            } else {
                count(t.int32_data.len(), "int32")?;
                t.int32_data.iter().map(|&v| v as i64).collect()
            };
            Ok(Const::I64(dims, v))
        }
        other => Err(malformed(
            path,
            format!("{what}: data type {other}; expected FLOAT (1), DOUBLE (11), INT32 (6) or INT64 (7)"),
        )),
    }
}
