// Package proto holds the wire types of the banger agent protocol: the
// host talks to the guest agent over an SSH subsystem channel named
// Subsystem, one JSON request per line, one JSON Response per line.
//
//	-> {"op":"ping"}
//	<- {"ok":true}
//	-> {"op":"health"}
//	<- {"ok":true,"result":{"ok":true,"checks":[...],...}}
//	-> {"op":"set_time","time_unix_nano":1735689600000000000}
//	<- {"ok":true}
//	-> {"op":"authorize_key","key":"ssh-ed25519 AAAA..."}
//	<- {"ok":false,"error":"authorize key: ..."}
//
// A failed op answers ok=false with a one-line error; the channel stays
// usable for further requests.
//
// The workspace ops move files and own their channel (send them alone):
//
//	-> {"op":"probe","path":"/root/proj"}
//	<- {"ok":true,"result":{"state":"absent","git":true}}
//	-> {"op":"extract","path":"/root/proj","git_refresh":true}
//	   then a tar stream until the host closes its side
//	<- {"ok":true,"result":{"files":12,"dirs":3,"bytes":4096,"skipped":0}}
//	-> {"op":"archive","path":"/root/proj","exclude":[".git"],
//	    "unchanged":{"mtime_unix_nano":1735689600000000000,"ctime_unix_nano":1735689601000000000}}
//	<- {"ok":true}
//	   then a tar stream; the channel's exit status is 0 when the archive
//	   is complete, else 1 with a one-line error on stderr
//	-> {"op":"remove","path":"/root/proj"}
//	<- {"ok":true}
package proto

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"banger/internal/bootcfg"
)

// Subsystem is the SSH subsystem name the agent protocol runs on.
const Subsystem = "banger-agent"

// Ops understood by the agent.
const (
	OpPing         = "ping"          // result: none
	OpHealth       = "health"        // result: Health
	OpPorts        = "ports"         // result: []api.VMPort
	OpAuthorizeKey = "authorize_key" // needs Key; result: none
	OpPoweroff     = "poweroff"      // result: none; the guest powers off after replying
	OpDiskUsage    = "disk_usage"    // result: DiskUsage
	OpSetTime      = "set_time"      // needs TimeUnixNano; sets the guest clock; result: none
	OpProbe        = "probe"         // needs Path; result: Probe
	OpExtract      = "extract"       // needs Path; a tar stream follows; replaces Path; result: Extracted
	OpArchive      = "archive"       // needs Path; answer, then a tar stream of Path (see above)
	OpRemove       = "remove"        // needs Path; removes it and everything below; result: none
	OpReseed       = "reseed"        // needs Entropy; mixes it into the guest RNG and reseeds it; result: none
	OpReidentify   = "reidentify"    // needs Identity; a fork's clone takes its own identity; result: none
	OpSecrets      = "secrets"       // needs Secrets; a running VM's secrets change (vm set --secret); result: none
)

// States of a probed path.
const (
	PathAbsent   = "absent"
	PathEmpty    = "empty"    // an empty directory
	PathNonEmpty = "nonempty" // anything else: a file, a symlink, a directory with entries
)

// Names of the health checks the agent runs.
const (
	CheckAgent        = "agent"
	CheckRootWritable = "root-writable"
	CheckWorkWritable = "work-writable"
	CheckClock        = "clock"
)

// MaxClockSkew is how far the guest clock may be from the host's for the
// host to accept it.
const MaxClockSkew = time.Second

// HealthFilePrefix starts the name of the files the writable checks create
// and remove.
const HealthFilePrefix = ".banger-health-"

// Request is one line sent by the host.
type Request struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"` // authorized_keys line, for OpAuthorizeKey
	// TimeUnixNano is the host clock for OpSetTime, in nanoseconds since
	// the Unix epoch.
	TimeUnixNano int64 `json:"time_unix_nano,omitempty"`
	// Path is the absolute guest path of the workspace ops.
	Path string `json:"path,omitempty"`
	// Exclude lists base-name patterns (filepath.Match) OpArchive leaves
	// out with everything below them.
	Exclude []string `json:"exclude,omitempty"`
	// Unchanged asks OpArchive to leave out the content of files that
	// have not changed since an extraction (see Unchanged).
	Unchanged *Unchanged `json:"unchanged,omitempty"`
	// GitRefresh asks OpExtract to refresh the git index of Path after
	// extracting (when Path has a .git and the guest has git; best effort).
	GitRefresh bool `json:"git_refresh,omitempty"`
	// Entropy is host randomness for OpReseed (MinEntropy to MaxEntropy bytes).
	Entropy []byte `json:"entropy,omitempty"`
	// Identity is the new identity for OpReidentify.
	Identity *Identity `json:"identity,omitempty"`
	// Secrets are the VM's new secrets for OpSecrets.
	Secrets *SecretsUpdate `json:"secrets,omitempty"`
}

// SecretsUpdate is a running VM's whole new set of secrets (OpSecrets):
// they replace the old ones for new sessions and in /run/banger/secrets
// (an empty list removes them all). Processes already running keep the
// environment they started with.
type SecretsUpdate struct {
	Secrets []bootcfg.Secret `json:"secrets,omitempty"`
	// CACerts, when set, are the VM's CA (PEM), installed into the
	// guest's trust stores and /run/banger as at boot.
	CACerts []string `json:"ca_certs,omitempty"`
}

// Probe is the answer to OpProbe.
type Probe struct {
	State string `json:"state"` // PathAbsent, PathEmpty or PathNonEmpty
	Git   bool   `json:"git"`   // the guest has git on its PATH
}

// Extracted is the answer to OpExtract.
type Extracted struct {
	Files   int   `json:"files"`   // regular files, symlinks and hard links written
	Dirs    int   `json:"dirs"`    // directories created or updated
	Bytes   int64 `json:"bytes"`   // bytes of regular file content
	Skipped int   `json:"skipped"` // entries of other types (devices, fifos)
	// DoneUnixNano is a change time (ctime, Unix nanoseconds) the agent
	// stamped on the folder once every entry was written: every extracted
	// file has an earlier one, any later change gets this or a later one.
	// 0 when the guest could not tell.
	DoneUnixNano int64 `json:"done_unix_nano,omitempty"`
}

// Unchanged identifies, for OpArchive, the regular files still as an
// extraction left them: modification time exactly MtimeUnixNano (what the
// host gave every file) and change time before CtimeUnixNano (the
// extraction's Extracted.DoneUnixNano). Any write, chmod, rename, link or
// touch since sets the change time to the file system's clock, no earlier
// than that stamp, so such a file is sent in full. For an unchanged file the archive holds a header only: type
// regular, size 0, and the PAX record PAXUnchanged giving the file's size.
type Unchanged struct {
	MtimeUnixNano int64 `json:"mtime_unix_nano"`
	CtimeUnixNano int64 `json:"ctime_unix_nano"`
}

// PAXUnchanged is the PAX record key of an archive entry whose content
// was left out as unchanged (see Unchanged); its value is the file's size
// in decimal.
const PAXUnchanged = "BANGER.unchanged"

// Identity is what a clone restored from a snapshot changes to become a
// VM of its own (control port only).
type Identity struct {
	Hostname string   `json:"hostname"`
	MAC      string   `json:"mac"`
	Address  string   `json:"address"` // CIDR
	Gateway  string   `json:"gateway,omitempty"`
	DNS      []string `json:"dns,omitempty"`
	Search   []string `json:"search,omitempty"`
	HostKey  string   `json:"host_key"` // PEM private key of the SSH server
	// TimeUnixNano and Entropy as for OpSetTime and OpReseed.
	TimeUnixNano int64  `json:"time_unix_nano"`
	Entropy      []byte `json:"entropy"`
	// Secrets are the clone's own placeholders; they replace the old ones
	// for new sessions and in /run/banger/secrets.
	Secrets []bootcfg.Secret `json:"secrets,omitempty"`
	// CACerts, when the clone has a CA of its own, replace the old CA
	// in the guest's trust stores and /run/banger (PEM).
	CACerts []string `json:"ca_certs,omitempty"`
}

// Bounds of Request.Entropy.
const (
	MinEntropy = 32
	MaxEntropy = 512
)

// Response is one line sent back by the agent. Result holds the op's
// value (see the Op constants) when OK is true; Error is set otherwise.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Health is the answer to OpHealth. The writable checks create and remove
// a file named HealthFilePrefix+random directly under the root ("/", the
// overlay: the file lands in the overlay disk's upper dir, never the image)
// and under the work disk's mount point (/root).
type Health struct {
	OK     bool    `json:"ok"` // every check passed
	Checks []Check `json:"checks"`
	// TimeUnixNano is the guest clock when the agent read the request; the
	// host compares it with its own (see CheckClock, MaxClockSkew).
	TimeUnixNano int64 `json:"time_unix_nano"`
	// ElapsedNanos is how long the agent then worked (the checks sync
	// files, which can take a while) before answering: the host leaves it
	// out of the round trip when it estimates the skew.
	ElapsedNanos int64 `json:"elapsed_nanos"`
	// Uptime is the guest's uptime in seconds (/proc/uptime).
	Uptime float64 `json:"uptime"`
}

// Check is one health check's outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// DiskUsage is the answer to OpDiskUsage.
type DiskUsage struct {
	Root DiskStat `json:"root"` // the overlay (writes to the VM's root filesystem)
	Work DiskStat `json:"work"` // the work disk mounted at /root
}

// DiskStat is the statfs view of one filesystem.
type DiskStat struct {
	Path       string `json:"path"`
	UsedBytes  uint64 `json:"used_bytes"`
	SizeBytes  uint64 `json:"size_bytes"`
	AvailBytes uint64 `json:"avail_bytes"`
}

// ReadLine reads one line of at most max bytes (its newline included) from
// br, leaving what follows in br; a longer line is refused. A last line
// without its newline comes back with io.EOF.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("line longer than %d bytes: refused", max)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}
