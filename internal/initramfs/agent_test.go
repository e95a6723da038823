package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestAgentArchive(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "agent")
	payload := []byte("\x7fELF not really an agent, but bytes to carry")
	if err := os.WriteFile(bin, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := AgentArchive(&buf, bin); err != nil {
		t.Fatal(err)
	}
	entries, err := List(&buf)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	for _, d := range []string{"dev", "proc", "sys", "mnt", "newroot"} {
		if !byName[d].IsDir() {
			t.Errorf("%s: missing or not a directory (%+v)", d, byName[d])
		}
	}
	c := byName["dev/console"]
	if !c.IsCharDev() || c.Major != 5 || c.Minor != 1 {
		t.Errorf("dev/console = mode %o dev %d,%d; want char device 5,1", c.Mode, c.Major, c.Minor)
	}
	in := byName["init"]
	if in.Mode != 0o100755 || !bytes.Equal(in.Data, payload) {
		t.Errorf("init = mode %o, %d bytes; want 0100755 with the agent's %d bytes", in.Mode, len(in.Data), len(payload))
	}
}

func TestAgentArchiveRefusesDirectory(t *testing.T) {
	if err := AgentArchive(&bytes.Buffer{}, t.TempDir()); err == nil {
		t.Fatal("a directory as agent binary: want an error")
	}
	if err := AgentArchive(&bytes.Buffer{}, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing agent binary: want an error")
	}
}

func TestListConcatenated(t *testing.T) {
	var one, two bytes.Buffer
	a := newArchive(&one)
	if err := a.file("a/x", 0o644, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	b := newArchive(&two)
	if err := b.file("y", 0o600, []byte("world!")); err != nil {
		t.Fatal(err)
	}
	if err := b.close(); err != nil {
		t.Fatal(err)
	}
	all := append(append(one.Bytes(), make([]byte, 7)...), two.Bytes()...)
	entries, err := List(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if len(entries) != 3 || names[0] != "a" || names[1] != "a/x" || names[2] != "y" || string(entries[2].Data) != "world!" {
		t.Fatalf("entries = %q", names)
	}
}
