package driver

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"banger/internal/api"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
)

// DefaultSocket is where a root bangerd listens.
const DefaultSocket = "/run/banger/bangerd.sock"

// pluginSpec is the driver's block in the Nomad client configuration:
//
//	plugin "banger" { config { socket = "/run/banger/bangerd.sock" } }
var pluginSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"socket": hclspec.NewDefault(hclspec.NewAttr("socket", "string", false),
		hclspec.NewLiteral(`"`+DefaultSocket+`"`)),
	"fingerprint_period": hclspec.NewDefault(hclspec.NewAttr("fingerprint_period", "string", false),
		hclspec.NewLiteral(`"30s"`)),
})

// PluginConfig is the decoded plugin block.
type PluginConfig struct {
	Socket            string `codec:"socket"`
	FingerprintPeriod string `codec:"fingerprint_period"`
}

// taskSpec is a task's config block (see docs/scale.md).
var taskSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"image":               hclspec.NewAttr("image", "string", true),
	"vcpus":               hclspec.NewAttr("vcpus", "number", false),
	"memory_mib":          hclspec.NewAttr("memory_mib", "number", false),
	"system_overlay_size": hclspec.NewAttr("system_overlay_size", "string", false),
	"work_disk_size":      hclspec.NewAttr("work_disk_size", "string", false),
	"nat":                 hclspec.NewAttr("nat", "bool", false),
	"authorized_keys":     hclspec.NewAttr("authorized_keys", "list(string)", false),
	"workspace": hclspec.NewBlock("workspace", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"source":            hclspec.NewAttr("source", "string", true),
		"guest_path":        hclspec.NewAttr("guest_path", "string", false),
		"branch":            hclspec.NewAttr("branch", "string", false),
		"mode":              hclspec.NewAttr("mode", "string", false),
		"include_untracked": hclspec.NewAttr("include_untracked", "bool", false),
	})),
})

// TaskConfig is a task's decoded config block.
type TaskConfig struct {
	Image             string          `codec:"image"`
	VCPUs             int             `codec:"vcpus"`
	MemoryMiB         int             `codec:"memory_mib"`
	SystemOverlaySize string          `codec:"system_overlay_size"`
	WorkDiskSize      string          `codec:"work_disk_size"`
	NAT               bool            `codec:"nat"`
	AuthorizedKeys    []string        `codec:"authorized_keys"`
	Workspace         *WorkspaceBlock `codec:"workspace"`
}

// WorkspaceBlock copies a git repository from the task folder (where an
// artifact block put it) into the VM once it is ready.
type WorkspaceBlock struct {
	Source           string `codec:"source"`
	GuestPath        string `codec:"guest_path"`
	Branch           string `codec:"branch"`
	Mode             string `codec:"mode"`
	IncludeUntracked bool   `codec:"include_untracked"`
}

// createParams turns a task into the daemon's create request. memoryMB is
// the task's Nomad memory reservation, used when memory_mib is not set, so
// Nomad accounts for the memory the VM really gets.
func (c TaskConfig) createParams(name string, memoryMB int64, keys []string) (api.VMCreateParams, error) {
	if strings.TrimSpace(c.Image) == "" {
		return api.VMCreateParams{}, errors.New("config: image is required")
	}
	if c.VCPUs < 0 || c.VCPUs > 64 {
		return api.VMCreateParams{}, fmt.Errorf("config: vcpus %d is out of range (1-64)", c.VCPUs)
	}
	if c.MemoryMiB < 0 {
		return api.VMCreateParams{}, fmt.Errorf("config: memory_mib %d is negative", c.MemoryMiB)
	}
	p := api.VMCreateParams{
		Name:              name,
		ImageName:         c.Image,
		SystemOverlaySize: c.SystemOverlaySize,
		WorkDiskSize:      c.WorkDiskSize,
		NATEnabled:        c.NAT,
		AuthorizedKeys:    append(append([]string(nil), c.AuthorizedKeys...), keys...),
	}
	if c.VCPUs > 0 {
		n := c.VCPUs
		p.VCPUCount = &n
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = int(memoryMB)
	}
	if mem > 0 {
		p.MemoryMiB = &mem
	}
	return p, nil
}

// workspaceParams resolves the workspace source inside the task folder; a
// source that leaves it (an absolute path, "..") is refused.
func (w *WorkspaceBlock) workspaceParams(vm, taskDir string) (api.VMWorkspacePrepareParams, error) {
	src := filepath.Clean(w.Source)
	if w.Source == "" || filepath.IsAbs(src) || src == ".." || strings.HasPrefix(src, "../") {
		return api.VMWorkspacePrepareParams{}, fmt.Errorf("config: workspace source %q must be a path inside the task folder (e.g. local/repo)", w.Source)
	}
	return api.VMWorkspacePrepareParams{
		IDOrName:         vm,
		SourcePath:       filepath.Join(taskDir, src),
		GuestPath:        w.GuestPath,
		Branch:           w.Branch,
		Mode:             w.Mode,
		IncludeUntracked: w.IncludeUntracked,
	}, nil
}

// vmName is the VM's name for a task: "nomad-", the allocation id's first
// eight characters and the task name made to fit banger's name rules, so
// `banger vm list` shows which allocation owns which VM.
func vmName(cfg *drivers.TaskConfig) string {
	alloc := cfg.AllocID
	if len(alloc) > 8 {
		alloc = alloc[:8]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(cfg.Name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	task := strings.Trim(b.String(), "-")
	name := "nomad-" + sanitize(alloc)
	if task != "" {
		name += "-" + task
	}
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimRight(name, "-")
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
