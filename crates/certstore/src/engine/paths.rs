//! Which directories to watch for a configured path: every directory in which a change of one
//! name can change what the path resolves to or holds.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// A directory and a name in it.
pub(crate) type WatchPoint = (PathBuf, OsString);

/// How many symlinks are followed from a configured path (as the kernel's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// Adds to `out` the watch points of `path` (absolute): the directory of each symlink met while
/// resolving it component by component (a symlinked file, a symlinked directory such as
/// `current -> v1`, the kubelet's `..data`), the directory of the file itself, and, when a
/// component does not exist, the deepest existing directory with the missing name (so its
/// arrival is seen). Directories named like the kubelet's generation directories (`..<time>`)
/// are skipped: they are replaced whole and `..data` in their parent announces it.
#[cfg(test)]
pub(crate) fn watch_points(path: &Path, out: &mut BTreeSet<WatchPoint>) {
    watch_points_in(path, out, &mut Lookups::default());
}

/// [`watch_points`] of several paths, each name looked up once (the certificate, key and CA
/// paths of a store mostly share their directories and symlinks).
pub(crate) fn watch_points_of<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
    out: &mut BTreeSet<WatchPoint>,
) {
    let mut lookups = Lookups::default();
    for path in paths {
        watch_points_in(path, out, &mut lookups);
    }
}

/// What a name is, looked up once per call.
#[derive(Clone)]
enum Found {
    Missing,
    /// A symlink and its target (`None`: unreadable).
    Symlink(Option<PathBuf>),
    Other,
}

#[derive(Default)]
struct Lookups(HashMap<PathBuf, Found>);

impl Lookups {
    fn get(&mut self, path: PathBuf) -> Found {
        self.0
            .entry(path)
            .or_insert_with_key(|path| match std::fs::symlink_metadata(path) {
                Err(_) => Found::Missing,
                Ok(meta) if meta.file_type().is_symlink() => {
                    Found::Symlink(std::fs::read_link(path).ok())
                }
                Ok(_) => Found::Other,
            })
            .clone()
    }
}

fn watch_points_in(path: &Path, out: &mut BTreeSet<WatchPoint>, lookups: &mut Lookups) {
    let mut remaining: Vec<OsString> = Vec::new();
    push_components(path, &mut remaining);
    let mut dir = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = remaining.pop() {
        if name == ".." {
            dir.pop();
            continue;
        }
        let candidate = dir.join(&name);
        match lookups.get(candidate.clone()) {
            Found::Missing => {
                record(out, &dir, name);
                return;
            }
            Found::Symlink(target) => {
                record(out, &dir, name);
                hops += 1;
                let Some(target) = target else {
                    return;
                };
                if hops > MAX_SYMLINK_HOPS {
                    return;
                }
                if target.is_absolute() {
                    dir = PathBuf::from("/");
                }
                push_components(&target, &mut remaining);
            }
            Found::Other => {
                if remaining.is_empty() {
                    record(out, &dir, name);
                }
                dir = candidate;
            }
        }
    }
}

/// Pushes the components of `path` onto `stack` so that the first component is popped first.
fn push_components(path: &Path, stack: &mut Vec<OsString>) {
    let mut parts: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_owned()),
            Component::ParentDir => parts.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack.extend(parts.into_iter().rev());
}

fn record(out: &mut BTreeSet<WatchPoint>, dir: &Path, name: OsString) {
    let kubelet_generation = dir
        .file_name()
        .is_some_and(|d| d.as_encoded_bytes().starts_with(b".."));
    if !kubelet_generation {
        out.insert((dir.to_path_buf(), name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn points(path: &Path) -> Vec<(PathBuf, String)> {
        let mut out = BTreeSet::new();
        watch_points(path, &mut out);
        out.into_iter()
            .map(|(d, n)| (d, n.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn follows_kubelet_layout_directory_symlinks_and_missing_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        // Kubelet: tls.crt -> ..data/tls.crt, ..data -> ..2026_01_01, real file inside.
        let mount = root.join("mount");
        std::fs::create_dir_all(mount.join("..2026_01_01")).unwrap();
        std::fs::write(mount.join("..2026_01_01/tls.crt"), "x").unwrap();
        symlink("..2026_01_01", mount.join("..data")).unwrap();
        symlink("..data/tls.crt", mount.join("tls.crt")).unwrap();
        let m = mount.clone();
        assert_eq!(
            points(&mount.join("tls.crt")),
            vec![(m.clone(), "..data".into()), (m.clone(), "tls.crt".into())]
        );
        // A path given through ..data watches ..data in the mount directory.
        assert_eq!(
            points(&mount.join("..data/tls.crt")),
            vec![(m.clone(), "..data".into())]
        );
        // A directory symlink swap: current -> v1.
        std::fs::create_dir_all(root.join("v1")).unwrap();
        std::fs::write(root.join("v1/tls.crt"), "x").unwrap();
        symlink("v1", root.join("current")).unwrap();
        assert_eq!(
            points(&root.join("current/tls.crt")),
            vec![
                (root.clone(), "current".into()),
                (root.join("v1"), "tls.crt".into())
            ]
        );
        // A missing directory: watch its parent for its arrival.
        assert_eq!(
            points(&root.join("later/tls.crt")),
            vec![(root.clone(), "later".into())]
        );
    }
}
