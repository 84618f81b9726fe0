//! coturn's `proc-user` / `proc-group`: give up root after the listening sockets are bound.

use std::ffi::CString;
use std::io;

/// The numeric ids a user and group name resolve to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
}

fn not_found(what: &str, name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such {what}: {name}"))
}

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// Resolves `user` (and its primary group, unless `group` is given) and `group` through
/// the system's user database (NSS), or as plain numbers.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> io::Result<Ids> {
    let mut ids = Ids {
        uid: None,
        gid: None,
    };
    if let Some(user) = user {
        if let Ok(uid) = user.parse::<libc::uid_t>() {
            ids.uid = Some(uid);
        } else {
            let name = cstring(user)?;
            let mut pwd: libc::passwd = unsafe_zeroed_passwd();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `pwd`
            // and `result` are live locals, `buf` has `buf.len()` writable bytes.
            let rc = unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            if result.is_null() {
                return Err(not_found("user", user));
            }
            ids.uid = Some(pwd.pw_uid);
            ids.gid = Some(pwd.pw_gid);
        }
    }
    if let Some(group) = group {
        if let Ok(gid) = group.parse::<libc::gid_t>() {
            ids.gid = Some(gid);
        } else {
            let name = cstring(group)?;
            // SAFETY: an all-zero `group` is a valid value of this plain C struct.
            let mut grp: libc::group = unsafe { std::mem::zeroed() };
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut result: *mut libc::group = std::ptr::null_mut();
            // SAFETY: as for getpwnam_r above.
            let rc = unsafe {
                libc::getgrnam_r(
                    name.as_ptr(),
                    &mut grp,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            if result.is_null() {
                return Err(not_found("group", group));
            }
            ids.gid = Some(grp.gr_gid);
        }
    }
    Ok(ids)
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: an all-zero `passwd` is a valid value of this plain C struct (null pointers,
    // zero ids); getpwnam_r fills it in.
    unsafe { std::mem::zeroed() }
}

/// Switches the whole process to `ids`: supplementary groups cleared, then the group, then
/// the user (the order that leaves no way back to root). Call it before starting threads
/// where possible; glibc applies set*id to every thread of the process anyway.
pub fn drop_to(ids: Ids) -> io::Result<()> {
    if let Some(gid) = ids.gid {
        // SAFETY: setgroups reads one gid from a valid pointer; setgid takes a plain value.
        if unsafe { libc::setgroups(1, &gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain syscall wrapper.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(uid) = ids.uid {
        // SAFETY: plain syscall wrapper.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The process's effective user id.
pub fn effective_uid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers() {
        let root = resolve(Some("root"), None).unwrap();
        assert_eq!(
            root,
            Ids {
                uid: Some(0),
                gid: Some(0)
            }
        );
        let n = resolve(Some("1234"), Some("99")).unwrap();
        assert_eq!(
            n,
            Ids {
                uid: Some(1234),
                gid: Some(99)
            }
        );
        assert_eq!(
            resolve(Some("no-such-user-switchyard"), None)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            resolve(None, Some("no-such-group-switchyard"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
