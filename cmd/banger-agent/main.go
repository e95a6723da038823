// Command banger-agent is banger's guest side: the VM's init (as /init in
// the initramfs, then "init" in the real root), the SSH server ("serve") and
// small file helpers the host runs over SSH ("tar-x", "tar-c").
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/agent/initsys"
)

const usage = `usage: banger-agent COMMAND
  init                     stage 2 of banger's init (PID 1 in the VM's root)
  serve                    run the SSH server only (when the image's init is PID 1)
  tar-x DIR                extract a tar from stdin under DIR; prints {"files","bytes"} JSON
  tar-c DIR [--exclude P]  write a tar of DIR to stdout (symlinks not followed)
As /init (PID 1 in the initramfs) it runs stage 1 of banger's init.
`

func main() {
	// The kernel runs /init with its own extra arguments; stage 1 is
	// recognised by name and PID, never by arguments.
	if os.Getpid() == 1 && filepath.Base(os.Args[0]) == "init" {
		console := initsys.OpenConsole()
		if os.Getenv(initsys.ProbeEnv) == "1" {
			initsys.Probe(console) // the host's accelerator probe (see qemu.ProbeKVM)
		}
		err := initsys.Stage1(initsys.NewConsoleLogger(console))
		initsys.FatalReboot(console, fmt.Errorf("stage 1: %w", err))
	}
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "banger-agent:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
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
	case "tar-x":
		if len(args) != 2 {
			return fmt.Errorf("tar-x: want exactly one DIR argument")
		}
		sum, err := extractTar(bufio.NewReaderSize(stdin, 1<<16), args[1])
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(sum)
	case "tar-c":
		dir, excludes, err := parseTarC(args[1:])
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(stdout, 1<<16)
		if err := writeTar(bw, dir, excludes); err != nil {
			return err
		}
		return bw.Flush()
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

// parseTarC reads "DIR [--exclude PATTERN]..." (also --exclude=PATTERN).
func parseTarC(args []string) (dir string, excludes []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--exclude":
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("tar-c: --exclude needs a pattern")
			}
			i++
			excludes = append(excludes, args[i])
		case len(a) > len("--exclude=") && a[:len("--exclude=")] == "--exclude=":
			excludes = append(excludes, a[len("--exclude="):])
		case dir == "" && a != "" && a[0] != '-':
			dir = a
		default:
			return "", nil, fmt.Errorf("tar-c: unexpected argument %q", a)
		}
	}
	if dir == "" {
		return "", nil, fmt.Errorf("tar-c: want a DIR argument")
	}
	for _, p := range excludes {
		if _, err := filepath.Match(p, ""); err != nil {
			return "", nil, fmt.Errorf("tar-c: bad --exclude pattern %q: %w", p, err)
		}
	}
	return dir, excludes, nil
}
