//! The few operating-system calls std does not offer: free space (`statvfs`), waiting for
//! SIGTERM/SIGINT (`pthread_sigmask` + `sigwait`), zero-copy downloads (`sendfile`), zero-copy
//! uploads (`splice` through a pipe), and systemd readiness (`sd_notify`, which needs no call at all:
//! a datagram to `$NOTIFY_SOCKET`).
//!
//! The unsafe code is confined here, each block a single libc call on memory we own.
#![allow(
    unsafe_code,
    reason = "libc calls for statvfs and signal masks; each block is one call"
)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// One line from the terminal on stdin, not echoed (a password prompt).
pub fn read_line_without_echo() -> io::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: `t` is a properly sized out-parameter for tcgetattr on a valid descriptor.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let saved = t;
    t.c_lflag &= !libc::ECHO;
    // SAFETY: `t` came from tcgetattr and only its echo flag changed.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    let mut line = String::new();
    let read = io::stdin().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// SIGKILL to every process of the group `pgid` (a hook started as a group leader, and
/// whatever it started).
pub fn kill_process_group(pgid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to the disk now, without
/// waiting for them (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`): the fsync that makes an
/// upload durable then has little left to wait for, and dirty pages never pile up in a Pi's
/// small RAM. Best effort: durability still comes from the fsync alone.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `file` is an open descriptor; the call reads and writes no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` is a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types differ between 32- and 64-bit targets"
    )]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn term_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

// A file offset of 64 bits on every target. glibc's `off_t` is 32 bits on 32-bit ARM (what
// `cargo build` on 32-bit Raspberry Pi OS makes), so a download past 2 GiB would fail after its
// headers went out: there the 64-bit call is `sendfile64`. musl's `off_t` is always 64 bits.
#[cfg(target_env = "gnu")]
type Offset = libc::off64_t;
#[cfg(target_env = "gnu")]
use libc::sendfile64 as sendfile;
#[cfg(not(target_env = "gnu"))]
type Offset = libc::off_t;
#[cfg(not(target_env = "gnu"))]
use libc::sendfile;

/// Sends `len` bytes of `file` from `offset` to the socket with `sendfile(2)`: no copy through
/// user space. (std's `io::copy` fell back to 8 KiB read/write pairs here: measured with strace,
/// 32768 `read` + 32768 `sendto` calls for 256 MiB.) Returns the bytes sent, fewer only if the
/// file shrank. The socket's send timeout applies: a stalled peer gives `TimedOut`.
pub fn send_file(sock: &TcpStream, file: &File, offset: u64, len: u64) -> io::Result<u64> {
    const MAX_CHUNK: u64 = 1 << 30; // 1 GiB per call, well under what sendfile accepts
    let mut off = Offset::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(MAX_CHUNK)).unwrap_or(1 << 20);
        // SAFETY: both descriptors are open for the duration of the call; `off` is ours.
        let n =
            counted(|| unsafe { sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) })
                .map_err(timed_out)?;
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    Ok(len - left)
}

/// Every address of the machine's interfaces (`getifaddrs(3)`), IPv4 and IPv6, up or not.
pub fn interface_addrs() -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: `ifa_addr` points to a sockaddr whose family says which struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: the family is AF_INET, so the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: the family is AF_INET6, so the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

/// The machine's host name (`gethostname(2)`), as the kernel has it now.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is ours and its length is passed; the kernel NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// A pipe used as the kernel-side buffer of `splice(2)`: body bytes go socket → pipe → file and
/// never through user space. Measured (bench/PROFILE.md): 8 KiB read/write pairs cost ~1.5 s of
/// CPU per GiB here; splicing through a 1 MiB pipe ~0.5 s, below a 1 MiB read/write loop.
pub struct Pipe {
    read: io::PipeReader,
    write: io::PipeWriter,
    capacity: usize,
}

/// The size asked for: 1 MiB is the default `fs.pipe-max-size`, and the size at which splicing
/// measured fastest here; the kernel holds at most this much per pipe.
const PIPE_SIZE: libc::c_int = 1 << 20;

impl Pipe {
    /// A new pipe, enlarged to `PIPE_SIZE` when the system allows (it keeps the default 64 KiB
    /// otherwise: `fs.pipe-max-size` or the per-user pipe budget may refuse).
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = io::pipe()?;
        // SAFETY: fcntl on a descriptor we own, with integer arguments only.
        let mut size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        if size < 0 {
            // SAFETY: as above.
            size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        }
        let capacity = usize::try_from(size).unwrap_or(0).max(4096);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// How many bytes the pipe holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves up to `len` bytes from `from` (a socket: its read timeout applies and gives
    /// `TimedOut`) into the pipe. 0 means the peer closed.
    pub fn fill_from(&self, from: &impl AsRawFd, len: usize) -> io::Result<usize> {
        splice(from.as_raw_fd(), self.write.as_raw_fd(), len)
    }

    /// Moves exactly `len` bytes out of the pipe into `to` at its current offset. The pipe must
    /// hold them: with fewer, it waits for more (callers only drain what they put in).
    pub fn drain_into(&self, to: &File, len: usize) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            match splice(self.read.as_raw_fd(), to.as_raw_fd(), left)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => left -= n.min(left),
            }
        }
        Ok(())
    }

    /// Copies `data` into the pipe. The caller keeps what the pipe holds below its capacity
    /// (a full pipe would block: nobody else reads it).
    pub fn push(&self, data: &[u8]) -> io::Result<()> {
        (&self.write).write_all(data)
    }

    /// Reads from the front of the pipe into `buf`. Callers read only what they put in (an
    /// empty pipe would block).
    pub fn read_out(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&self.read).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Duplicates up to `len` bytes from the front of this pipe onto the end of `to` without
    /// consuming them (`tee(2)`: page references, no copy). Fewer when `to` has fewer free
    /// slots; 0 when it has none. The bytes duplicated are always the first ones here, so a
    /// caller that got fewer must read those before asking for the rest.
    pub fn tee_into(&self, to: &Pipe, len: usize) -> io::Result<usize> {
        // SAFETY: both descriptors are open pipes we own; no memory is passed.
        let teed = counted(|| unsafe {
            libc::tee(
                self.read.as_raw_fd(),
                to.write.as_raw_fd(),
                len,
                libc::SPLICE_F_NONBLOCK,
            )
        });
        match teed {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }
}

/// One `splice(2)` between two descriptors at their own offsets; a socket timeout is `TimedOut`.
fn splice(from: libc::c_int, to: libc::c_int, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the call; null offsets mean "current offset".
    let moved = counted(|| unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    });
    moved.map_err(timed_out)
}

/// A socket's timeout (SO_RCVTIMEO/SO_SNDTIMEO expiring gives EAGAIN) reported as `TimedOut`,
/// so callers tell a stalled peer from other errors the same way for every call.
pub fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        e
    }
}

/// Runs a call that returns a count or -1 with `errno`, again while it is interrupted (EINTR).
fn counted(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(usize::try_from(n).unwrap_or(0));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Blocks SIGTERM and SIGINT in this thread and every thread it spawns afterwards, so that only
/// `wait_for_termination` receives them. Call before spawning any thread.
pub fn block_termination_signals() -> io::Result<()> {
    let set = term_signals();
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // A closed socket must give EPIPE, not kill the process.
    // SAFETY: setting SIGPIPE to ignored is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

/// Waits for SIGTERM or SIGINT; returns its number.
pub fn wait_for_termination() -> i32 {
    let set = term_signals();
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` is initialised and `sig` is a valid out-parameter.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 {
            return sig;
        }
    }
}

/// Tells systemd about our state (`READY=1`, `STOPPING=1`) when run as `Type=notify`.
/// Without `$NOTIFY_SOCKET` it does nothing.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))
    };
    if let Err(e) = sent {
        log::warn!("sd_notify({state}) failed: {e}");
    }
}

/// A new empty file open for reading and writing in the temp directory, for tests; the caller
/// removes it.
#[cfg(test)]
pub(crate) fn scratch_file(tag: &str) -> (File, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("pidrop-{tag}-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("scratch file");
    (file, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_real_directory() {
        let free = free_space(Path::new(".")).expect("statvfs works on the cwd");
        assert!(free > 0);
        assert!(free_space(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn a_pipe_moves_socket_bytes_and_pushed_bytes_into_a_file_in_order() {
        use std::io::{Read, Seek, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let (mut file, path) = scratch_file("pipe");
        let pipe = Pipe::new().expect("pipe");
        assert!(pipe.capacity() >= 4096);

        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let writer = std::thread::spawn(move || {
            client.write_all(&sent).expect("send");
            sent
        });
        let mut moved = 0;
        while moved < 200_000 {
            let n = pipe.fill_from(&server, 200_000 - moved).expect("splice in");
            assert!(n > 0, "peer closed early");
            pipe.drain_into(&file, n).expect("splice out");
            moved += n;
        }
        let sent = writer.join().expect("writer");
        pipe.push(b"tail").expect("push");
        pipe.drain_into(&file, 4).expect("drain");

        let mut back = Vec::new();
        file.rewind().expect("rewind");
        file.read_to_end(&mut back).expect("read");
        assert_eq!(&back[..200_000], &sent[..]);
        assert_eq!(&back[200_000..], b"tail");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn notify_reaches_a_socket() {
        let dir = std::env::temp_dir().join(format!("pidrop-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let server = UnixDatagram::bind(&dir).expect("bind");
        // Only this test reads NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &dir);
        sd_notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&dir);
    }
}
