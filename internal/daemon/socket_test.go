package daemon

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestListenGivesTheSocketTheNamedGroup(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skip("own group has no name:", err)
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, access, err := listen(path, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || int(fi.Sys().(*syscall.Stat_t).Gid) != os.Getgid() {
		t.Errorf("socket mode %o gid %d (%s)", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, access)
	}
}

func TestListenRefusesAMissingNamedGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	if ln, _, err := listen(path, "no-such-group-banger-test"); err == nil {
		ln.Close()
		t.Fatal("a missing socket group was accepted")
	}
	if _, err := os.Lstat(path); err == nil {
		t.Error("socket left behind")
	}
}
