package vmmproc

import (
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
)

// DefaultVMMUser is the system user VMMs run as when the daemon is root.
const DefaultVMMUser = "banger-vmm"

// SysUser is an unprivileged system user and its primary group.
type SysUser struct {
	Name     string
	UID, GID int
}

var sysUserName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)

// EnsureSysUser returns the system user name, creating it when missing with
// useradd --system (no home, no login shell, its own group). A user that
// exists but is root (uid or gid 0) is refused.
func EnsureSysUser(name string) (SysUser, error) {
	if !sysUserName.MatchString(name) {
		return SysUser{}, fmt.Errorf("vmm user %q: not a valid user name", name)
	}
	u, err := lookupSysUser(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		out, rerr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--user-group", "--comment", "banger VMMs", name).CombinedOutput()
		if rerr != nil {
			return SysUser{}, fmt.Errorf("create vmm user %s: useradd: %v: %s", name, rerr, strings.TrimSpace(string(out)))
		}
		u, err = lookupSysUser(name)
	}
	if err != nil {
		return SysUser{}, fmt.Errorf("vmm user %s: %w", name, err)
	}
	if u.UID == 0 || u.GID == 0 {
		return SysUser{}, fmt.Errorf("vmm user %s has uid %d gid %d: it must not be root", name, u.UID, u.GID)
	}
	return u, nil
}

func lookupSysUser(name string) (SysUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return SysUser{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return SysUser{}, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return SysUser{}, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	return SysUser{Name: name, UID: uid, GID: gid}, nil
}
