package sshd

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"banger/internal/api"
)

// tcpListen is the TCP_LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

// socketEntry is one listening socket from /proc/net.
type socketEntry struct {
	proto string // "tcp" or "udp"
	addr  netip.Addr
	port  int
	inode string
}

// listPorts returns the listening TCP sockets and unconnected UDP sockets,
// each with the process owning it when one is found.
func listPorts(procRoot string) ([]api.VMPort, error) {
	var entries []socketEntry
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		es, err := readSocketTable(filepath.Join(procRoot, "net", name), strings.TrimSuffix(name, "6"))
		if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(name, "6") {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
	}
	owners := socketOwners(procRoot)
	ports := []api.VMPort{}
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.proto + " " + e.addr.String() + " " + strconv.Itoa(e.port)
		if seen[key] {
			continue // SO_REUSEPORT groups list one socket per member
		}
		seen[key] = true
		p := api.VMPort{Proto: e.proto, BindAddress: e.addr.String(), Port: e.port}
		if pid, ok := owners[e.inode]; ok {
			p.PID = pid
			p.Process, p.Command = processNames(procRoot, pid)
		}
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool {
		a, b := ports[i], ports[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.BindAddress < b.BindAddress
	})
	return ports, nil
}

// readSocketTable parses one /proc/net/{tcp,tcp6,udp,udp6} file and keeps
// TCP sockets in LISTEN state and UDP sockets with no remote peer.
func readSocketTable(path, proto string) ([]socketEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	defer f.Close()
	var out []socketEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		local, remote, state, inode := fields[1], fields[2], fields[3], fields[9]
		if proto == "tcp" && state != tcpListen {
			continue
		}
		if proto == "udp" && !strings.HasSuffix(remote, ":0000") {
			continue
		}
		addr, port, err := parseProcAddr(local)
		if err != nil {
			return nil, fmt.Errorf("list ports: %s: %w", path, err)
		}
		out = append(out, socketEntry{proto: proto, addr: addr, port: port, inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list ports: read %s: %w", path, err)
	}
	return out, nil
}

// parseProcAddr decodes "0100007F:1F90": an address as 32-bit words in
// host (little-endian) byte order, then a big-endian port, both in hex.
func parseProcAddr(s string) (netip.Addr, int, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("bad socket address %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("bad socket address %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad socket port %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr.Unmap(), int(port), nil
}

// socketOwners maps socket inodes to the lowest pid holding them open.
func socketOwners(procRoot string) map[string]int {
	owners := map[string]int{}
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return owners
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			inode := strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")
			if old, ok := owners[inode]; !ok || pid < old {
				owners[inode] = pid
			}
		}
	}
	return owners
}

// processNames returns a process's comm and its command line joined by spaces.
func processNames(procRoot string, pid int) (comm, command string) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		comm = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		command = strings.TrimSpace(strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " "))
	}
	return comm, command
}
