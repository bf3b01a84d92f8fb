//! Every file netc reads as input or writes as output goes through here.
//!
//! Reading (`read_input`): only regular files, and only up to a stated size. A device
//! (`/dev/zero`, `/dev/urandom`), a FIFO or a socket is refused before it is opened, so
//! nothing is read without end and nothing blocks waiting for a writer; a regular file larger
//! than the limit is refused with both sizes in the message.
//!
//! Writing (`write_atomic`): the bytes go to a hidden temporary file in the target's
//! directory (a rename is atomic only within one file system), are flushed to disk (`fsync`),
//! and only then renamed over the target; the directory is synced so the rename itself is
//! durable. Any failure (a full disk, an I/O error) removes the temporary and leaves the
//! previous file untouched. Files that belong together (an object and its header) are
//! written as a group (`write_atomic_all`): all are staged before any is renamed into place.
//! A temporary left by a process that was killed (SIGKILL, power loss) is removed by the next
//! write of the same target. Targets that are not regular files
//! (devices such as `/dev/null`, symbolic links, FIFOs, directories) and the run's own input
//! files (the `.net` source, loaded weights, data files) are refused: `check_output_path`
//! says so before any work is done, and `write_atomic` checks again.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest `.net` source (or REPL `:load`) netc reads: 64 MiB, some 100 times a
/// 10,000-layer model written out one `let` per layer. Beyond it a source is generated
/// garbage, or a device read by mistake.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// The largest data or weights file netc reads: the default memory limit (three quarters of
/// the machine's memory), since the whole file is held in memory as it is decoded.
pub fn max_data_bytes() -> u64 {
    crate::ir::limits::default_limit()
}

/// Why an input could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The path does not exist.
    NotFound,
    /// The path is not a regular file; `what` names it ("a directory", "a FIFO", ...).
    NotRegular { what: &'static str },
    /// The file is larger than the limit of its kind.
    TooLarge { size: u64, limit: u64 },
    /// Any other failure of the file system.
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => write!(f, "no such file"),
            ReadError::NotRegular { what } => write!(f, "it is {what}, not a regular file"),
            ReadError::TooLarge { size, limit } => write!(
                f,
                "the file is {} ({size} bytes), over the limit of {} for this kind of input",
                crate::ir::limits::human(*size as u128),
                crate::ir::limits::human(*limit as u128)
            ),
            ReadError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => write!(f, "permission denied"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What a file type is, in words, for a path that is not a regular file.
fn describe_type(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Read the whole of the regular file `path`, refusing anything else and anything over
/// `limit` bytes. The size is checked before reading and enforced while reading (a file that
/// grows meanwhile is cut off and refused, not read without end).
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    })?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular { what: describe_type(&meta.file_type()) });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { size: meta.len(), limit });
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(meta.len() as usize).map_err(|_| ReadError::TooLarge { size: meta.len(), limit })?;
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { size: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

/// `read_input` of a text file: invalid UTF-8 is an error naming the offset and line.
pub fn read_text(path: &Path, limit: u64) -> Result<String, String> {
    let bytes = read_input(path, limit).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("{} is not UTF-8 text: invalid byte at offset {at} (line {line})", path.display())
    })
}

/// Why an output could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// The path names no file (empty, or ends in `/` or `..`).
    NoFileName,
    /// The target exists and is not a regular file (a device, a symbolic link, a FIFO, a
    /// directory): netc never replaces one.
    NotRegular { what: &'static str },
    /// The target is one of this run's input files.
    IsInput { input: PathBuf },
    /// Two outputs of one command name the same file.
    SameOutput { other: PathBuf },
    /// The file system refused (missing directory, permission, full disk, ...); the previous
    /// file, if any, is untouched.
    Io(std::io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::NoFileName => write!(f, "the path names no file"),
            WriteError::NotRegular { what } => {
                write!(f, "it is {what}; netc only replaces regular files")
            }
            WriteError::IsInput { input } => write!(f, "it is the input file {}, which would be lost", input.display()),
            WriteError::SameOutput { other } => {
                write!(f, "it is also the path of another output ({})", other.display())
            }
            WriteError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write!(f, "no such directory")
            }
            WriteError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => write!(f, "permission denied"),
            WriteError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Whether `a` and `b` are the same file (the same inode), when both exist.
fn same_file(a: &fs::Metadata, b: &Path) -> bool {
    let Ok(mb) = fs::metadata(b) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == mb.dev() && a.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, mb);
        false
    }
}

/// Whether netc may write `path`: it names a file that either does not exist yet or is a
/// regular file (not a symbolic link, device, FIFO or directory) that is none of `inputs`.
/// Commands call this for every output before they start work (training, compiling), so a
/// bad path costs nothing; `write_atomic` checks again when it writes.
pub fn check_output_path(path: &Path, inputs: &[&Path]) -> Result<(), WriteError> {
    let name = path.file_name().ok_or(WriteError::NoFileName)?;
    if name.is_empty() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(WriteError::NoFileName);
    }
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_file() {
                return Err(WriteError::NotRegular { what: describe_type(&meta.file_type()) });
            }
            if let Some(input) = inputs.iter().find(|i| same_file(&meta, i)) {
                return Err(WriteError::IsInput { input: input.to_path_buf() });
            }
            Ok(())
        }
        // Nothing there to replace; a missing folder (or one that is a file) is reported by
        // whoever makes the folder or writes the file.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(()),
        Err(e) => Err(WriteError::Io(e)),
    }
}

/// `check_output_path` for several outputs of one command, which must also differ from each
/// other (`netc build -o x.h` would otherwise write the header over the object).
pub fn check_output_paths(outputs: &[&Path], inputs: &[&Path]) -> Result<(), (PathBuf, WriteError)> {
    for (i, out) in outputs.iter().enumerate() {
        check_output_path(out, inputs).map_err(|e| (out.to_path_buf(), e))?;
        for other in &outputs[..i] {
            let same = normalize(other) == normalize(out)
                || fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_file() && same_file(&m, other));
            if same {
                return Err((out.to_path_buf(), WriteError::SameOutput { other: other.to_path_buf() }));
            }
        }
    }
    Ok(())
}

/// `path` absolute and without `.` components, for comparing paths that may not exist yet.
fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    abs.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// The prefix of every temporary file of `path`: `.NAME.netc-`, then the writer's process id
/// and `.tmp`. NAME is cut to its first 200 bytes, so that the temporary of a legal name near
/// the file system's 255-byte limit is legal too.
fn temp_prefix(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut end = file.len().min(200);
    while !file.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.netc-", &file[..end])
}

/// Where `write_atomic` stages the new contents of `path`: a hidden name in the same
/// directory, unique to this process.
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}.tmp", temp_prefix(path), std::process::id()))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Remove temporaries of `path` left by processes that no longer run (killed mid-write).
/// Only on systems with `/proc`, where a process id can be checked; elsewhere they stay.
fn remove_stale_temps(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(parent_dir(path)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Bytes this process has written through `write_atomic` (for the test hook below).
static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A test hook: `NETC_FAIL_WRITES_AFTER=N` makes atomic writes fail with "no space left on
/// device" once N bytes in all have been written by this process, as a file system that fills
/// up would (so a command's second file can fail after its first was written). The room left.
fn injected_capacity() -> Option<usize> {
    let capacity: usize = std::env::var("NETC_FAIL_WRITES_AFTER").ok()?.parse().ok()?;
    Some(capacity.saturating_sub(WRITTEN.load(std::sync::atomic::Ordering::SeqCst)))
}

/// Write `bytes` to `path` atomically (see the module comment): afterwards `path` holds
/// either its previous contents or exactly `bytes`, never a mix, whatever fails or kills
/// the process. Refuses what `check_output_path` refuses. A replaced file keeps its
/// permissions.
pub fn write_atomic(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), WriteError> {
    write_atomic_all(&[(path, bytes)], inputs).map_err(|(_, e)| e)
}

/// Write several files that belong together (an object and its header) atomically as a
/// group, as far as a file system allows: every file is staged and flushed first, and only
/// when all of them are on disk are they renamed over their targets. A failure while staging
/// (a full disk) replaces none of them. Refuses what `check_output_paths` refuses; the error
/// names the file it is about.
pub fn write_atomic_all(files: &[(&Path, &[u8])], inputs: &[&Path]) -> Result<(), (PathBuf, WriteError)> {
    let paths: Vec<&Path> = files.iter().map(|(p, _)| *p).collect();
    check_output_paths(&paths, inputs)?;
    let mut staged: Vec<PathBuf> = Vec::with_capacity(files.len());
    let discard = |staged: &[PathBuf]| {
        for tmp in staged {
            let _ = fs::remove_file(tmp);
        }
    };
    for &(path, bytes) in files {
        remove_stale_temps(path);
        match stage(path, bytes) {
            Ok(tmp) => staged.push(tmp),
            Err(e) => {
                discard(&staged);
                return Err((path.to_path_buf(), WriteError::Io(e)));
            }
        }
    }
    for (i, (&(path, _), tmp)) in files.iter().zip(&staged).enumerate() {
        // The target may have become something else since it was checked: look once more
        // just before the rename (a rename replaces a symlink itself, never its target).
        let renamed = check_output_path(path, inputs).and_then(|()| fs::rename(tmp, path).map_err(WriteError::Io));
        if let Err(e) = renamed {
            discard(&staged[i..]);
            return Err((path.to_path_buf(), e));
        }
        if let Ok(dir) = File::open(parent_dir(path)) {
            let _ = dir.sync_all(); // best effort: makes the rename durable
        }
    }
    Ok(())
}

/// Write `bytes` to a new temporary of `path` and flush it to disk; its path, or the error
/// (after removing it).
fn stage(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp).or_else(|e| {
            // Our own leftover (the same process id reused): replace it.
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                fs::remove_file(&tmp)?;
                fs::OpenOptions::new().write(true).create_new(true).open(&tmp)
            } else {
                Err(e)
            }
        })?;
        match injected_capacity() {
            Some(room) if room < bytes.len() => {
                file.write_all(&bytes[..room])?;
                WRITTEN.fetch_add(room, std::sync::atomic::Ordering::SeqCst);
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            _ => file.write_all(bytes)?,
        }
        WRITTEN.fetch_add(bytes.len(), std::sync::atomic::Ordering::SeqCst);
        file.sync_all()?;
        if let Ok(old) = fs::metadata(path) {
            let _ = fs::set_permissions(&tmp, old.permissions());
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}
