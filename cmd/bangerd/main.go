// Command bangerd is banger's daemon: it owns VMs, images and kernels and
// serves the API on a Unix socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"banger/internal/authz"
	"banger/internal/buildinfo"
	"banger/internal/daemon"
	"banger/internal/paths"
	"banger/internal/units"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == authz.HelperArg {
		os.Exit(authz.RunHelper(os.Args[2:]))
	}
	var opts daemon.Options
	fs := flag.NewFlagSet("bangerd", flag.ContinueOnError)
	fs.StringVar(&opts.Socket, "socket", paths.DefaultSocket(), "API socket path (env "+paths.EnvSocket+")")
	fs.StringVar(&opts.SocketGroup, "socket-group", os.Getenv("BANGER_SOCKET_GROUP"),
		"group that may use the socket, mode 0660 (env BANGER_SOCKET_GROUP; default: group "+daemon.DefaultSocketGroup+" when it exists, else mode 0600)")
	fs.StringVar(&opts.StateDir, "state-dir", paths.DefaultStateDir(), "state directory (env "+paths.EnvHome+")")
	fs.StringVar(&opts.AgentPath, "agent", "", "banger-agent binary for guests (default: next to bangerd)")
	fs.StringVar(&opts.Accel, "accel", envOr("BANGER_ACCEL", "auto"), "accelerator: auto, kvm or tcg (env BANGER_ACCEL)")
	fs.StringVar(&opts.VMM, "vmm", envOr("BANGER_VMM", "qemu"), "vm monitor: qemu or firecracker (env BANGER_VMM)")
	fs.BoolVar(&opts.Debug, "debug", false, "debug logging")
	fs.StringVar(&opts.SecretsKey, "secrets-key", os.Getenv("BANGER_SECRETS_KEY"), "key file of the secrets vault, 32 bytes raw or 64 hex digits, mode 0600 (env BANGER_SECRETS_KEY; default STATE/secrets/key, created on first start)")
	maxDisk := fs.String("max-disk-size", os.Getenv("BANGER_MAX_DISK_SIZE"), "largest VM disk, e.g. 500G (env BANGER_MAX_DISK_SIZE; default 1T); disks must also fit the free space")
	maxImage := fs.String("max-image-size", os.Getenv("BANGER_MAX_IMAGE_SIZE"), "largest expanded image on import or pull (env BANGER_MAX_IMAGE_SIZE; default 64G); it must also fit the free space")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bangerd: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	for _, f := range []struct {
		name string
		val  string
		dst  *int64
	}{{"max-disk-size", *maxDisk, &opts.MaxDiskBytes}, {"max-image-size", *maxImage, &opts.MaxImageBytes}} {
		if f.val == "" {
			continue
		}
		n, err := units.ParseSize(f.val)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bangerd: --%s %q: want a size such as 500G\n", f.name, f.val)
			os.Exit(2)
		}
		*f.dst = n
	}
	if *version {
		fmt.Printf("bangerd %s %s %s\n", buildinfo.Version, buildinfo.Commit, buildinfo.BuiltAt)
		return
	}
	opts.Stderr = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if err := daemon.Run(ctx, opts); err != nil {
		fmt.Fprintf(os.Stderr, "bangerd: %v\n", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
