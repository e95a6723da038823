package dns

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// resolvedStub is systemd-resolved's local stub address.
var resolvedStub = netip.MustParseAddr("127.0.0.53")

// HostUpstreams returns a function listing the host's resolvers as
// "host:port", read from resolvConf and read again whenever that file
// changes (VPNs rewrite it). When resolvConf points at systemd-resolved's
// stub (127.0.0.53), the real upstreams are read from resolvedConf
// (normally /run/systemd/resolve/resolv.conf) instead, if it exists.
func HostUpstreams(resolvConf, resolvedConf string) func() []string {
	u := &upstreamFiles{main: resolvConf, resolved: resolvedConf}
	return u.get
}

type upstreamFiles struct {
	main, resolved string

	mu    sync.Mutex
	stamp string // size and mtime of both files when list was read
	list  []string
}

func (u *upstreamFiles) get() []string {
	stamp := fileStamp(u.main) + "|" + fileStamp(u.resolved)
	u.mu.Lock()
	defer u.mu.Unlock()
	if stamp != u.stamp || u.list == nil {
		u.list = readUpstreams(u.main, u.resolved)
		u.stamp = stamp
	}
	return u.list
}

func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "-"
	}
	return fi.ModTime().Format(time.RFC3339Nano) + "/" + strconv.FormatInt(fi.Size(), 10)
}

// readUpstreams applies the resolv.conf rules of HostUpstreams.
func readUpstreams(resolvConf, resolvedConf string) []string {
	addrs := nameservers(resolvConf)
	for _, a := range addrs {
		if a == resolvedStub {
			if real := nameservers(resolvedConf); len(real) > 0 {
				addrs = real
			}
			break
		}
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	return out
}

// nameservers parses the nameserver lines of a resolv.conf file.
func nameservers(path string) []netip.Addr {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
