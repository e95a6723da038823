package vmmproc

import (
	"strings"
	"testing"
)

func TestEnsureSysUserRefuses(t *testing.T) {
	for _, name := range []string{"", "Root", "a b", "../x", strings.Repeat("a", 40)} {
		if _, err := EnsureSysUser(name); err == nil || !strings.Contains(err.Error(), "not a valid user name") {
			t.Errorf("EnsureSysUser(%q) = %v, want a bad-name error", name, err)
		}
	}
	if _, err := EnsureSysUser("root"); err == nil || !strings.Contains(err.Error(), "must not be root") {
		t.Errorf("EnsureSysUser(root) = %v, want refused", err)
	}
}
