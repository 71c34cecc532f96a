//! What `probe --against` compares the served leaf with: a PEM file, or the `tls.crt` of a
//! Kubernetes Secret as `kubectl get secret -o json` or `-o yaml` prints it, from a file or from
//! standard input (`-`). The format is told from the content, so
//! `kubectl get secret -n prod api-tls -o json | certstore probe api:443 --against -` needs no
//! option saying what is piped in.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;

/// The key of a `kubernetes.io/tls` Secret that holds the certificate chain, leaf first.
const TLS_CRT: &str = "tls.crt";

/// The `--against` argument.
pub struct Against {
    path: PathBuf,
    /// `-`: standard input, read once when the command starts (there is no second reading of
    /// a pipe); every probe of `--interval` compares with it. A file is read again each time.
    stdin: Option<Vec<u8>>,
}

/// PEM text to take the leaf from, and where it came from.
pub struct Certificates {
    /// The input as the text output names it: the path or "standard input", followed by
    /// "(Secret NAMESPACE/NAME, tls.crt)" when the PEM was a Secret's.
    pub label: String,
    /// The Secret's NAMESPACE/NAME (or NAME), when the input was a Secret.
    pub secret: Option<String>,
    /// The input as error messages name it ("certificate file PATH" or "standard input"),
    /// with the same Secret suffix as `label`.
    pub source: String,
    pub pem: Vec<u8>,
}

impl Against {
    pub fn open(path: &Path) -> Result<Against, String> {
        let stdin = if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("--against -: cannot read standard input: {e}"))?;
            Some(bytes)
        } else {
            None
        };
        Ok(Against {
            path: path.to_owned(),
            stdin,
        })
    }

    /// The input as the text output names it when it could not be read.
    pub fn label(&self) -> String {
        match self.stdin {
            Some(_) => "standard input".to_owned(),
            None => self.path.display().to_string(),
        }
    }

    fn source(&self) -> String {
        match self.stdin {
            Some(_) => "standard input".to_owned(),
            None => format!("certificate file {}", self.path.display()),
        }
    }

    /// The PEM to compare with. An error means there is nothing to compare with at all (the
    /// file cannot be read, a Secret without tls.crt, not a Secret): it names the input and
    /// what is wrong. PEM that holds no usable certificate is not an error here: that is a
    /// broken generation, which the caller reports as a difference.
    pub fn read(&self) -> Result<Certificates, String> {
        let bytes = match &self.stdin {
            Some(bytes) => bytes.clone(),
            None => std::fs::read(&self.path)
                .map_err(|e| format!("{}: cannot read: {e}", self.source()))?,
        };
        let (label, source) = (self.label(), self.source());
        match secret_document(&bytes).map_err(|e| format!("{source}: {e}"))? {
            None => Ok(Certificates {
                label,
                secret: None,
                source,
                pem: bytes,
            }),
            Some(document) => {
                let (name, pem) =
                    secret_tls_crt(&document).map_err(|e| format!("{source}: {e}"))?;
                let suffix = format!(" (Secret {name}, {TLS_CRT})");
                Ok(Certificates {
                    label: label + &suffix,
                    secret: Some(name),
                    source: source + &suffix,
                    pem,
                })
            }
        }
    }
}

/// `Some(document)` when `bytes` is a Kubernetes object (JSON, or a YAML mapping), `None` when
/// it is to be read as PEM: it has a `-----BEGIN` line, is empty, is not text, or is YAML that
/// is no mapping (stray text around no PEM at all is a broken certificate file, not an object).
fn secret_document(bytes: &[u8]) -> Result<Option<Value>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    let text = text.trim_start();
    if text.starts_with('{') {
        return serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("not valid JSON (a Kubernetes Secret was expected): {e}"));
    }
    if text.is_empty() || text.lines().any(|line| line.starts_with("-----BEGIN ")) {
        return Ok(None);
    }
    match Yaml::load_from_str(text).as_deref() {
        Ok([document]) if document.is_mapping() => Ok(Some(yaml_to_json(document))),
        _ => Ok(None),
    }
}

/// The YAML tree as the equivalent JSON value, so that one piece of code reads a Secret in
/// either form. Only strings and mappings matter for a Secret; other scalars keep their value.
fn yaml_to_json(node: &Yaml<'_>) -> Value {
    match node {
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Representation(text, _, _) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| match yaml_to_json(k) {
                    Value::String(key) => Some((key, yaml_to_json(v))),
                    Value::Number(n) => Some((n.to_string(), yaml_to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => yaml_to_json(inner),
        Yaml::Value(Scalar::Null) | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

/// The Secret's name and the PEM text of its tls.crt: `stringData` (a manifest's plain text,
/// which the API server merges over `data`) first, then the base64 of `data`.
fn secret_tls_crt(document: &Value) -> Result<(String, Vec<u8>), String> {
    match document.get("kind").and_then(Value::as_str) {
        Some("Secret") => {}
        Some("List") => {
            let items = document
                .get("items")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            return Err(format!(
                "a Kubernetes List of {items} objects, not one Secret \
                 (name the Secret: kubectl get secret NAME -o json)"
            ));
        }
        Some(kind) => return Err(format!("a Kubernetes {kind}, not a Secret")),
        None => {
            return Err(
                "neither PEM nor a Kubernetes Secret (no -----BEGIN line, no \"kind\")".to_owned(),
            );
        }
    }
    let metadata = document.get("metadata");
    let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
    let name = match (field("namespace"), field("name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => "(unnamed)".to_owned(),
    };
    let string_data = document.get("stringData").and_then(Value::as_object);
    let data = document.get("data").and_then(Value::as_object);
    if let Some(pem) = string_data
        .and_then(|m| m.get(TLS_CRT))
        .and_then(Value::as_str)
    {
        return Ok((name, pem.as_bytes().to_vec()));
    }
    if let Some(encoded) = data.and_then(|m| m.get(TLS_CRT)).and_then(Value::as_str) {
        // Hand-written manifests may fold long base64 over lines.
        let encoded: String = encoded.split_ascii_whitespace().collect();
        let pem = STANDARD
            .decode(encoded)
            .map_err(|e| format!("Secret {name}: data.\"{TLS_CRT}\" is not valid base64 ({e})"))?;
        return Ok((name, pem));
    }
    let keys: Vec<&str> = data
        .into_iter()
        .chain(string_data)
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    let place = if string_data.is_some() {
        "data or stringData"
    } else {
        "data"
    };
    let has = if keys.is_empty() {
        "it has no keys".to_owned()
    } else {
        format!("it has: {}", keys.join(", "))
    };
    Err(format!(
        "Secret {name} has no \"{TLS_CRT}\" in {place} ({has})"
    ))
}

#[cfg(test)]
mod tests {
    use super::{secret_document, secret_tls_crt};

    #[test]
    fn pem_empty_and_stray_text_are_read_as_pem() {
        for text in [
            "",
            "  \n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "subject=CN=x\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "just some text",
            "- a\n- list\n",
        ] {
            assert_eq!(secret_document(text.as_bytes()), Ok(None), "{text:?}");
        }
        assert_eq!(secret_document(&[0x30, 0x82, 0xff, 0xfe]), Ok(None));
    }

    #[test]
    fn yaml_and_json_secrets_read_alike() {
        let yaml = "kind: Secret\nmetadata:\n  name: api-tls\n  namespace: prod\n\
                    data:\n  tls.crt: aGVsbG8=\n  tls.key: c2VjcmV0\n";
        let json = r#"{"kind":"Secret","metadata":{"name":"api-tls","namespace":"prod"},
                       "data":{"tls.crt":"aGVsbG8=","tls.key":"c2VjcmV0"}}"#;
        for text in [yaml, json] {
            let document = secret_document(text.as_bytes()).unwrap().unwrap();
            assert_eq!(
                secret_tls_crt(&document),
                Ok(("prod/api-tls".to_owned(), b"hello".to_vec())),
                "{text}"
            );
        }
    }

    #[test]
    fn string_data_wins_and_folded_base64_is_accepted() {
        let yaml = "kind: Secret\nmetadata:\n  name: a\ndata:\n  tls.crt: b2xk\n\
                    stringData:\n  tls.crt: new\n";
        let document = secret_document(yaml.as_bytes()).unwrap().unwrap();
        assert_eq!(secret_tls_crt(&document).unwrap().1, b"new");
        let yaml = "kind: Secret\ndata:\n  tls.crt: >-\n    aGVs\n    bG8=\n";
        let document = secret_document(yaml.as_bytes()).unwrap().unwrap();
        assert_eq!(
            secret_tls_crt(&document),
            Ok(("(unnamed)".to_owned(), b"hello".to_vec()))
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let errors = [
            (
                "kind: Secret\nmetadata:\n  name: a\n",
                "Secret a has no \"tls.crt\" in data (it has no keys)",
            ),
            (
                "kind: Secret\nstringData:\n  ca.crt: x\n",
                "Secret (unnamed) has no \"tls.crt\" in data or stringData (it has: ca.crt)",
            ),
            (
                "kind: List\nitems:\n- kind: Secret\n- kind: Secret\n",
                "a Kubernetes List of 2 objects",
            ),
            (
                "apiVersion: v1\ndata:\n  tls.crt: x\n",
                "neither PEM nor a Kubernetes Secret",
            ),
        ];
        for (text, error) in errors {
            let document = secret_document(text.as_bytes()).unwrap().unwrap();
            let got = secret_tls_crt(&document).unwrap_err();
            assert!(got.starts_with(error), "{text}: {got}");
        }
        assert!(
            secret_document(b"{\"kind\": ")
                .unwrap_err()
                .starts_with("not valid JSON")
        );
    }
}
