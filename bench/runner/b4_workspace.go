package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchWorkspace is B4: workspace prepare of a large repository against
// `git archive | ssh tar x` into the same VM, and export of 1,000 changed
// files against `git diff --binary` of the same change on the host.
func benchWorkspace(ctx context.Context, e *env) ([]Row, error) {
	dir := filepath.Join(e.cfg.work, "b4")
	big := filepath.Join(dir, "big")
	e.cfg.log.Info("B4: generating repository", "files", e.cfg.b4Files, "mb", e.cfg.b4MB)
	if err := makeRepo(ctx, big, e.cfg.b4Files, int64(e.cfg.b4MB)*1000*1000); err != nil {
		return nil, err
	}
	if _, err := e.d.createVM(ctx, "b4", e.image); err != nil {
		return nil, err
	}
	sshCfg := filepath.Join(dir, "ssh_config")
	out, err := e.d.cli(ctx, "vm", "ssh-config", "b4")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(sshCfg, []byte(out), 0o600); err != nil {
		return nil, err
	}
	guest := func(cmd string) error {
		return runCmd(ctx, "", "ssh", "-F", sshCfg, "-o", "BatchMode=yes", "b4", cmd)
	}
	if err := guest("true"); err != nil {
		return nil, fmt.Errorf("ssh into the guest: %w", err)
	}
	prepare := func(i int) (float64, error) {
		p := fmt.Sprintf("/root/ws-%d", i)
		t0 := time.Now()
		_, err := e.d.cli(ctx, "vm", "workspace", "prepare", "b4", big, "--guest-path", p)
		d := time.Since(t0).Seconds()
		if err == nil {
			err = guest("rm -rf " + p + " && sync")
		}
		return d, err
	}
	archive := func(i int) (float64, error) {
		p := fmt.Sprintf("/root/ga-%d", i)
		pipe := fmt.Sprintf("git -C %s archive --format=tar HEAD | ssh -F %s -o BatchMode=yes b4 'mkdir -p %s && tar -x -C %s'", big, sshCfg, p, p)
		t0 := time.Now()
		err := runCmd(ctx, "", "bash", "-o", "pipefail", "-c", pipe)
		d := time.Since(t0).Seconds()
		if err == nil {
			err = guest("rm -rf " + p + " && sync")
		}
		return d, err
	}
	var prep, arch []float64
	for i := 0; i < e.cfg.runs; i++ {
		var a, b float64
		var errA, errB error
		if i%2 == 0 {
			a, errA = prepare(i)
			b, errB = archive(i)
		} else {
			b, errB = archive(i)
			a, errA = prepare(i)
		}
		if errA != nil {
			return nil, errA
		}
		if errB != nil {
			return nil, errB
		}
		prep, arch = append(prep, a), append(arch, b)
		e.cfg.log.Info("B4", "run", i, "prepare_s", a, "git_archive_ssh_s", b)
	}
	r1 := pairRow("B4", fmt.Sprintf("workspace prepare, %d files / %d MB", e.cfg.b4Files, e.cfg.b4MB), "s", prep,
		"git archive HEAD | ssh root@guest tar x (same VM)", arch)
	r1.Goal = "ratio ≤ 1.2"
	r1.Note = "busybox guest (no git), 1024 MiB, 2 vCPUs"

	r2, err := exportRow(ctx, e, dir, guest)
	if err != nil {
		return []Row{r1}, err
	}
	return []Row{r1, r2}, nil
}

// exportRow prepares a 1,000-file repository, changes every file in the
// guest and times export against the host's `git diff --binary` of the
// same change in a clone.
func exportRow(ctx context.Context, e *env, dir string, guest func(string) error) (Row, error) {
	const n = 1000
	small := filepath.Join(dir, "small")
	if err := makeRepo(ctx, small, n, n*2000); err != nil {
		return Row{}, err
	}
	if _, err := e.d.cli(ctx, "vm", "workspace", "prepare", "b4", small, "--guest-path", "/root/exp"); err != nil {
		return Row{}, err
	}
	edit := `find /root/exp -type f -path '*/d*' ! -path '*/.git/*' | while read f; do echo "changed in the guest" >> "$f"; done`
	if err := guest(edit); err != nil {
		return Row{}, err
	}
	host := filepath.Join(dir, "small-host")
	if err := runCmd(ctx, "", "git", "clone", "-q", small, host); err != nil {
		return Row{}, err
	}
	files, err := repoFiles(host)
	if err != nil {
		return Row{}, err
	}
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return Row{}, err
		}
		fh.WriteString("changed in the guest\n")
		fh.Close()
	}
	patch := filepath.Join(dir, "export.patch")
	sshCfg := filepath.Join(dir, "ssh_config")
	var exp, diff, walk []float64
	for i := 0; i < e.cfg.runs; i++ {
		t0 := time.Now()
		if _, err := e.d.cli(ctx, "vm", "workspace", "export", "b4", "--guest-path", "/root/exp", "-o", patch); err != nil {
			return Row{}, err
		}
		exp = append(exp, time.Since(t0).Seconds())
		t0 = time.Now()
		cmd := exec.CommandContext(ctx, "git", "-C", host, "diff", "--binary")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			return Row{}, fmt.Errorf("git diff: %w", err)
		}
		diff = append(diff, time.Since(t0).Seconds())
		// The guest's own floor: reading the same tree with its tar,
		// through ssh, content discarded on the host.
		t0 = time.Now()
		if err := runCmd(ctx, "", "bash", "-o", "pipefail", "-c",
			fmt.Sprintf("ssh -F %s -o BatchMode=yes b4 'tar -c -C /root/exp .' >/dev/null", sshCfg)); err != nil {
			return Row{}, fmt.Errorf("guest tar c: %w", err)
		}
		walk = append(walk, time.Since(t0).Seconds())
		if i == 0 {
			got, _ := os.ReadFile(patch)
			if c1, c2 := strings.Count(string(got), "\ndiff --git ")+1, strings.Count(out.String(), "\ndiff --git ")+1; c1 != c2 || c1 != len(files) {
				return Row{}, fmt.Errorf("export: patch touches %d files, host diff %d, want %d", c1, c2, len(files))
			}
		}
	}
	r := pairRow("B4", fmt.Sprintf("workspace export, %d changed files", len(files)), "s", exp, "git diff --binary of the same change on the host", diff)
	r.Note = fmt.Sprintf("both times reported; export includes the guest round trip; guest floor `ssh guest tar c` of the same tree: %s",
		fmtStat(summarize(walk), "s"))
	return r, nil
}

// makeRepo writes a git repository of n text files totalling about size
// bytes in a two-level tree, committed once.
func makeRepo(ctx context.Context, dir string, n int, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'b', '4', byte(n)}))
	words := strings.Fields("func return if else for range var const type struct interface map string int error nil ctx err " +
		"value name path file data buf len cap append make new select case default go defer package import")
	avg := size / int64(n)
	var b strings.Builder
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%03d/s%02d/f%05d.txt", i%100, (i/100)%20, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		want := avg/2 + rng.Int64N(avg+1)
		b.Reset()
		for int64(b.Len()) < want {
			for w := 0; w < 10; w++ {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d\n", rng.Uint32())
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "bench"}} {
		if err := runCmd(ctx, dir, "git", args...); err != nil {
			return err
		}
	}
	return nil
}

// repoFiles lists the generated files of a repository.
func repoFiles(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "d*", "s*", "f*.txt"))
}
