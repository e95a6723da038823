package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestOwners runs the real CLI as two real unprivileged host users, alice
// and bob (made for the test, members of a group made for the test that
// owns the daemon's socket), against one daemon running as root. One VM,
// owned by alice, is booted.
func TestOwners(t *testing.T) {
	group, gid := ownersGroup(t)
	alice := ownersNewUser(t, "a", group, gid)
	bob := ownersNewUser(t, "b", group, gid)

	d := newDaemonEnv(t, "BANGER_SOCKET_GROUP="+group)
	t.Cleanup(d.cleanup)
	// The users reach the socket (in d.dir) and the binaries, nothing else.
	for _, dir := range []string{d.dir, binDir} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	d.must(t, "kernel", "pull", "debian-12-cloud")
	registerBusybox(t, d, "bb") // root's: shared

	t.Run("state files are private", func(t *testing.T) {
		want := map[string]os.FileMode{d.state: 0o700, filepath.Join(d.state, "banger.db"): 0o600}
		for _, sub := range []string{"images", "kernels", "vms", "blobs", "cache", "logs", "ssh", "network"} {
			want[filepath.Join(d.state, sub)] = 0o700
		}
		if _, err := os.Stat(filepath.Join(d.state, "banger.db-wal")); err == nil {
			want[filepath.Join(d.state, "banger.db-wal")] = 0o600
		}
		for p, m := range want {
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
			} else if fi.Mode().Perm() != m {
				t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), m)
			}
		}
		if out, err := alice.exec("/bin/cat", filepath.Join(d.state, "banger.db")); err == nil {
			t.Errorf("alice read the database (%d bytes)", len(out))
		}
	})

	// alice creates a VM from root's image and kernel, and follows the
	// operation herself.
	var op struct {
		ID   string `json:"id"`
		Done bool   `json:"done"`
		OK   bool   `json:"success"`
		Err  string `json:"error"`
	}
	alice.mustJSON(t, d, &op, "vm", "create", "--detach", "--name", "owned-a", "--image", "bb", "--memory", "256", "--vcpus", "1")
	opID := op.ID
	for deadline := time.Now().Add(10 * time.Minute); !op.Done && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		alice.mustJSON(t, d, &op, "vm", "create-status", opID)
	}
	if !op.Done || !op.OK {
		t.Fatalf("alice's vm create: %+v", op)
	}
	if out := alice.must(t, d, "vm", "exec", "owned-a", "--", "echo", "hello-alice"); strings.TrimSpace(out) != "hello-alice" {
		t.Fatalf("alice's exec: %q", out)
	}

	t.Run("bob cannot see or act on alice's VM", func(t *testing.T) {
		if out := bob.must(t, d, "vm", "list"); strings.Contains(out, "owned-a") {
			t.Errorf("bob's vm list shows alice's VM:\n%s", out)
		}
		if out := d.must(t, "vm", "list"); !strings.Contains(out, "owned-a") {
			t.Errorf("root's vm list lacks alice's VM:\n%s", out)
		}
		src := filepath.Join(bob.home, "src")
		os.MkdirAll(src, 0o755)
		os.Chown(src, bob.uid, bob.gid)
		for _, args := range [][]string{
			{"vm", "show", "owned-a"},
			{"vm", "exec", "owned-a", "--", "true"},
			{"vm", "ssh-config", "owned-a"}, // authorize-key
			{"vm", "stop", "owned-a"},
			{"vm", "kill", "owned-a"},
			{"vm", "restart", "owned-a"},
			{"vm", "set", "owned-a", "--memory", "300"},
			{"vm", "delete", "--force", "owned-a"},
			{"vm", "stats", "owned-a"},
			{"vm", "logs", "owned-a"},
			{"vm", "ports", "owned-a"},
			{"vm", "workspace", "export", "owned-a", "-o", filepath.Join(bob.home, "x.patch")},
			{"vm", "workspace", "prepare", "owned-a", src},
			{"vm", "create-status", opID},
		} {
			bob.refused(t, d, "belongs to another user", args...)
		}
		// None of it happened: the VM still runs and answers its owner.
		if out := alice.must(t, d, "vm", "exec", "owned-a", "--", "echo", "still-here"); strings.TrimSpace(out) != "still-here" {
			t.Errorf("alice's VM after bob's attempts: %q", out)
		}
	})

	// A file of bob's to name in his requests (the CLI checks it exists).
	bobFile := filepath.Join(bob.home, "x.ext4")
	os.WriteFile(bobFile, nil, 0o600)
	os.Chown(bobFile, bob.uid, bob.gid)

	t.Run("root's images and kernels are shared, not changeable", func(t *testing.T) {
		if out := bob.must(t, d, "kernel", "list"); !strings.Contains(out, "debian-12-cloud") {
			t.Errorf("bob does not see root's kernel:\n%s", out)
		}
		bob.must(t, d, "image", "show", "bb")
		bob.refused(t, d, "owned by root", "image", "delete", "bb")
		bob.refused(t, d, "owned by root", "kernel", "delete", "debian-12-cloud")
		bob.refused(t, d, "owned by root", "kernel", "pull", "--force", "debian-12-cloud")
		bob.refused(t, d, "owned by root", "kernel", "import", "debian-12-cloud", "--from-dir", bob.home)
		bob.refused(t, d, "owned by root", "image", "register", "--name", "bb", "--rootfs", bobFile)
		d.must(t, "image", "show", "bb")
		d.must(t, "kernel", "show", "debian-12-cloud")
	})

	t.Run("alice's image is private", func(t *testing.T) {
		rootfs := filepath.Join(alice.home, "mine.ext4")
		if out, err := exec.Command("cp", "--sparse=always", busyboxRootfs(t), rootfs).CombinedOutput(); err != nil {
			t.Fatalf("copy rootfs: %v %s", err, out)
		}
		os.Chown(rootfs, alice.uid, alice.gid)
		alice.must(t, d, "image", "register", "--name", "a-private", "--rootfs", rootfs, "--kernel-ref", "debian-12-cloud")
		if out := bob.must(t, d, "image", "list"); strings.Contains(out, "a-private") {
			t.Errorf("bob's image list shows alice's image:\n%s", out)
		}
		if out := d.must(t, "image", "list"); !strings.Contains(out, "a-private") {
			t.Errorf("root's image list lacks alice's image:\n%s", out)
		}
		bob.refused(t, d, "belongs to another user", "image", "show", "a-private")
		bob.refused(t, d, "belongs to another user", "vm", "create", "--name", "b-vm", "--image", "a-private")
		bob.refused(t, d, "belongs to another user", "image", "delete", "a-private")
		bob.refused(t, d, "belongs to another user", "image", "register", "--name", "a-private", "--rootfs", bobFile)
		alice.must(t, d, "image", "show", "a-private")
		if out := bob.must(t, d, "vm", "list"); strings.Contains(out, "b-vm") {
			t.Errorf("a VM was made from alice's image for bob:\n%s", out)
		}
	})

	// banger mcp runs as its user and talks to the daemon as that user: the
	// same door applies to an agent driving banger over MCP.
	t.Run("bob's MCP server does not see alice's VM", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := bob.command(ctx, filepath.Join(binDir, "banger"), "--socket", d.socket, "mcp")
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "owners"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("connect to bob's banger mcp: %v", err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "vm_list", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("vm_list as bob: %v %s", err, mcpResultText(res))
		}
		if data, _ := json.Marshal(res.StructuredContent); strings.Contains(string(data), "owned-a") {
			t.Errorf("bob's vm_list shows alice's VM: %s", data)
		}
		for _, call := range []struct {
			tool string
			args map[string]any
		}{
			{"vm_show", map[string]any{"vm": "owned-a"}},
			{"vm_exec", map[string]any{"vm": "owned-a", "shell": "true"}},
			{"file_read", map[string]any{"vm": "owned-a", "path": "/etc/hostname"}},
			{"vm_delete", map[string]any{"vm": "owned-a"}},
		} {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: call.tool, Arguments: call.args})
			if err != nil {
				t.Fatalf("%s: %v", call.tool, err)
			}
			if !res.IsError || !strings.Contains(mcpResultText(res), "belongs to another user") {
				t.Errorf("%s on alice's VM as bob: error=%v %q, want a refusal", call.tool, res.IsError, mcpResultText(res))
			}
		}
		if out := d.must(t, "vm", "show", "owned-a"); !strings.Contains(out, "running") {
			t.Errorf("alice's VM after bob's MCP calls:\n%s", out)
		}
	})

	t.Run("only root stops the daemon", func(t *testing.T) {
		bob.refused(t, d, "only root may stop the daemon", "daemon", "stop")
		alice.refused(t, d, "only root may stop the daemon", "daemon", "stop")
		d.must(t, "ping")
	})

	t.Run("root may do everything", func(t *testing.T) {
		if out := d.must(t, "vm", "exec", "owned-a", "--", "echo", "root-here"); strings.TrimSpace(out) != "root-here" {
			t.Errorf("root's exec in alice's VM: %q", out)
		}
		d.must(t, "image", "show", "a-private")
		d.must(t, "vm", "delete", "--force", "owned-a")
		d.must(t, "image", "delete", "a-private")
		if out := alice.must(t, d, "vm", "list"); strings.Contains(out, "owned-a") {
			t.Errorf("alice's VM survived root's delete:\n%s", out)
		}
	})
}

// ownersUser is a real host user the owners test made.
type ownersUser struct {
	name     string
	uid, gid int
	groups   []uint32
	home     string
}

// ownersGroup makes a host group for the daemon's socket, removed at the end.
func ownersGroup(t *testing.T) (string, int) {
	t.Helper()
	name := fmt.Sprintf("bgo%d", os.Getpid()%100000)
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return name, gid
}

// ownersNewUser makes a host user (own primary group, member of group) with
// a home folder of their own; user and home go at the end.
func ownersNewUser(t *testing.T, suffix, group string, groupGID int) *ownersUser {
	t.Helper()
	base, err := os.MkdirTemp("", "banger-owners-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o711)
	name := fmt.Sprintf("bgo%d%s", os.Getpid()%100000, suffix)
	home := filepath.Join(base, name)
	if out, err := exec.Command("useradd", "--no-create-home", "--user-group", "--groups", group,
		"--home-dir", home, "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		os.RemoveAll(base)
		t.Fatalf("useradd %s: %v %s", name, err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		os.RemoveAll(base)
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(home, uid, gid)
	return &ownersUser{name: name, uid: uid, gid: gid, groups: []uint32{uint32(gid), uint32(groupGID)}, home: home}
}

// command is a process running as u, in u's home, with u's environment only.
func (u *ownersUser) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = u.home
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + u.home,
		"XDG_CONFIG_HOME=" + filepath.Join(u.home, ".config"), "USER=" + u.name, "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: u.groups}}
	return cmd
}

// exec runs a program as u and returns its combined output.
func (u *ownersUser) exec(bin string, args ...string) ([]byte, error) {
	return u.command(context.Background(), bin, args...).CombinedOutput()
}

// run runs the banger CLI as u against d.
func (u *ownersUser) run(d *daemon, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := u.command(ctx, filepath.Join(binDir, "banger"), append([]string{"--socket", d.socket}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

func (u *ownersUser) must(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	out, errOut, code := u.run(d, args...)
	if code != 0 {
		t.Fatalf("%s: banger %s: exit %d\nstdout: %s\nstderr: %s", u.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (u *ownersUser) mustJSON(t *testing.T, d *daemon, v any, args ...string) {
	t.Helper()
	out := u.must(t, d, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: banger %s: bad JSON: %v\n%s", u.name, strings.Join(args, " "), err, out)
	}
}

// refused runs the CLI as u and wants exit 1 with one line on stderr that
// contains want.
func (u *ownersUser) refused(t *testing.T, d *daemon, want string, args ...string) {
	t.Helper()
	out, errOut, code := u.run(d, args...)
	msg := strings.TrimSpace(errOut)
	if code != 1 || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("%s: banger %s: exit %d, want 1 and one line saying %q\nstdout: %s\nstderr: %s",
			u.name, strings.Join(args, " "), code, want, out, errOut)
	}
}

func mcpResultText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	return mcpText(res)
}
