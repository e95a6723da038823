package dns

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostUpstreams(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "resolv.conf")
	resolved := filepath.Join(dir, "resolved.conf")

	writeFile(t, main, "# comment\nsearch example.org\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n")
	get := HostUpstreams(main, resolved)
	want := []string{"10.0.0.2:53", "[fe80::1%eth0]:53"}
	if got := get(); !slices.Equal(got, want) {
		t.Errorf("plain file: %v, want %v", got, want)
	}

	// The file changes (a VPN connects): the new list is used.
	writeFile(t, main, "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
	if got := get(); !slices.Equal(got, []string{"127.0.0.53:53"}) {
		t.Errorf("stub without resolved file: %v, want the stub", got)
	}
	writeFile(t, resolved, "nameserver 192.0.2.10\nnameserver 192.0.2.11\n")
	if got, want := get(), []string{"192.0.2.10:53", "192.0.2.11:53"}; !slices.Equal(got, want) {
		t.Errorf("stub with resolved file: %v, want %v", got, want)
	}
}

func TestHostUpstreamsMissingFile(t *testing.T) {
	get := HostUpstreams(filepath.Join(t.TempDir(), "none"), filepath.Join(t.TempDir(), "none"))
	if got := get(); len(got) != 0 {
		t.Errorf("missing file: %v, want none", got)
	}
}
