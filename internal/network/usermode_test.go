package network

import (
	"context"
	"errors"
	"strings"
	"testing"

	"banger/internal/api"
)

// User mode attaches with QEMU's user-network addresses and a loopback port
// for SSH, holds nothing to detach and refuses a NAT switch saying why.
func TestUserMode(t *testing.T) {
	u := NewUserMode("no bridge here")
	att, err := u.Attach(context.Background(), "0123456789abcdef", false)
	if err != nil {
		t.Fatal(err)
	}
	if att.Mode != ModeUser || att.Tap != "" || att.SSHHostPort <= 0 || att.MAC != MACFor("0123456789abcdef").String() {
		t.Fatalf("attachment = %+v", att)
	}
	n := att.BootNetwork()
	if n.Address != "10.0.2.15/24" || n.Gateway != "10.0.2.2" || len(n.DNS) != 1 || n.DNS[0] != "10.0.2.3" || len(n.DNSSearch) != 0 {
		t.Fatalf("boot network = %+v", n)
	}
	if _, err := u.Attach(context.Background(), "../x", false); err == nil {
		t.Error("bad vm id accepted")
	}
	if err := u.Detach(context.Background(), "0123456789abcdef"); err != nil {
		t.Errorf("detach: %v", err)
	}
	err = u.SetNAT(context.Background(), "0123456789abcdef", true)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "no bridge here") {
		t.Errorf("set nat: %v, want ErrUnavailable with the reason", err)
	}
}
