// Command banger-agent is banger's guest side: the VM's init (as /init in
// the initramfs, then "init" in the real root) and the SSH server ("serve");
// the host reaches it through the agent protocol (package proto).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/agent/initsys"
)

const usage = `usage: banger-agent COMMAND
  init                     stage 2 of banger's init alone (PID 1 in the VM's root)
  serve                    run the SSH server only (when the image's init is PID 1)
As /init (PID 1 in the initramfs) it runs stage 1 of banger's init, then
stage 2 in the same process.
`

func main() {
	// The kernel runs /init with its own extra arguments; stage 1 is
	// recognised by name and PID, never by arguments.
	if os.Getpid() == 1 && filepath.Base(os.Args[0]) == "init" {
		console := initsys.OpenConsole()
		if os.Getenv(initsys.ProbeEnv) == "1" {
			initsys.Probe(console) // the host's accelerator probe (see qemu.ProbeKVM)
		}
		log := initsys.NewConsoleLogger(console)
		if err := initsys.Stage1(log); err != nil {
			initsys.FatalReboot(console, fmt.Errorf("stage 1: %w", err))
		}
		// Stage 1 switched root: stage 2 goes on in this process.
		err := initsys.Stage2(log)
		initsys.FatalReboot(console, fmt.Errorf("stage 2: %w", err))
	}
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "banger-agent:", err)
		os.Exit(1)
	}
}

func run(args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("no command given\n%s", usage)
	}
	switch args[0] {
	case "init":
		console := initsys.OpenConsole()
		err := initsys.Stage2(initsys.NewConsoleLogger(console))
		if os.Getpid() == 1 {
			initsys.FatalReboot(console, fmt.Errorf("stage 2: %w", err))
		}
		return err
	case "serve":
		return initsys.Serve(initsys.NewConsoleLogger(initsys.OpenConsole()))
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}
