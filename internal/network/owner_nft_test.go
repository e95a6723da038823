package network

import (
	"errors"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// connectAs reports whether a process with uid can open a TCP connection
// to addr (curl exit 7 is "could not connect").
func connectAs(t *testing.T, uid uint32, addr string) bool {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "-o", "/dev/null", "--max-time", "5", "http://"+addr+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode() != 7
	}
	if err != nil {
		t.Fatalf("curl as %d: %v", uid, err)
	}
	return true
}

func TestOwnerRulesLetOnlyTheOwnerAndRootConnect(t *testing.T) {
	if !isolated(t) {
		return
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		host := "127.0.0.1"
		if network == "tcp6" {
			host = "::1"
		}
		ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nok"))
				c.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if !connectAs(t, 65534, addr) {
			t.Fatalf("%s: without rules uid 65534 cannot connect", addr)
		}
		r := OwnerRules{Table: "banger-owner-test"}
		if err := r.Set([]PortOwner{{Port: uint16(port), UID: 1234}}); err != nil {
			t.Fatal(err)
		}
		if connectAs(t, 65534, addr) {
			t.Errorf("%s: uid 65534 connected to uid 1234's port", addr)
		}
		if !connectAs(t, 1234, addr) {
			t.Errorf("%s: the owner cannot connect", addr)
		}
		if !connectAs(t, 0, addr) {
			t.Errorf("%s: root cannot connect", addr)
		}
		if err := r.Set(nil); err != nil {
			t.Fatal(err)
		}
		if !connectAs(t, 65534, addr) {
			t.Errorf("%s: uid 65534 still refused after the rules were removed", addr)
		}
	}
}
