package daemon

import (
	"log/slog"
	"strings"
	"testing"
)

func TestQEMUOptionsSerialLogSettings(t *testing.T) {
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct{ key, value, err string }{
		{EnvSerialLogMax, "1", "4K to 1G"},
		{EnvSerialLogMax, "2G", "4K to 1G"},
		{EnvSerialLogMax, "lots", "4K to 1G"},
		{EnvSerialLogFiles, "0", "from 1 to 16"},
		{EnvSerialLogFiles, "17", "from 1 to 16"},
		{EnvSerialLogFiles, "x", "from 1 to 16"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			if _, err := d.qemuOptions(true); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("qemuOptions: %v, want an error saying %q", err, tt.err)
			}
		})
	}
	t.Setenv(EnvSerialLogMax, "256K")
	t.Setenv(EnvSerialLogFiles, "3")
	t.Setenv(EnvVMMUser, "Not A User")
	opts, err := d.qemuOptions(true)
	if err == nil && opts.RunAs != nil {
		t.Errorf("a bad vmm user name was accepted: %+v", opts.RunAs)
	}
	if opts.SerialLogMax != 256<<10 || opts.SerialLogKeep != 3 {
		t.Errorf("serial log settings %d, %d; want 256K, 3", opts.SerialLogMax, opts.SerialLogKeep)
	}
}
