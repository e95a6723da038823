package mcp

import (
	"context"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure the server.
type Options struct {
	Daemon  Daemon
	Guests  Guests
	Version string
	// OutputCap bounds each of a command's stdout and stderr (and a job's
	// output per read) in bytes; default 64 KiB.
	OutputCap int
	// JobDir is the guest folder holding background jobs' output; default
	// /tmp/banger-jobs.
	JobDir string
	// Cwd resolves relative host paths (workspace sources); default the
	// process's working directory.
	Cwd string
}

// DefaultOutputCap bounds each output stream of a command.
const DefaultOutputCap = 64 << 10

type server struct {
	Options
}

// NewServer returns the MCP server with every banger tool and the serial
// log resource.
func NewServer(o Options) *mcp.Server {
	if o.OutputCap <= 0 {
		o.OutputCap = DefaultOutputCap
	}
	if o.JobDir == "" {
		o.JobDir = "/tmp/banger-jobs"
	}
	s := &server{Options: o}
	ms := mcp.NewServer(&mcp.Implementation{Name: "banger", Title: "banger microVMs", Version: o.Version},
		&mcp.ServerOptions{Instructions: instructions})
	s.addVMTools(ms)
	s.addExecTools(ms)
	s.addFileTools(ms)
	s.addWorkspaceTools(ms)
	s.addSecretTools(ms)
	s.addResources(ms)
	return ms
}

const instructions = `banger gives you disposable Linux microVMs. Create one with vm_create, run commands with vm_exec (background: true for long jobs, then vm_job_output), read and edit files with the file_* tools, copy a host git repository in with workspace_prepare and get your changes back as a patch with workspace_export. You are root in the guest. To call an API with a token, bind a secret the human added (secret_list, vm_create's secrets): the guest holds a placeholder and never the value; no tool takes a secret's value. Delete VMs you no longer need with vm_delete.`

// kind is how a tool touches its environment (for annotations).
type kind int

const (
	readOnly    kind = iota // changes nothing
	additive                // creates or starts, never destroys
	destructive             // may overwrite, stop, kill or delete
)

func annotations(title string, k kind) *mcp.ToolAnnotations {
	a := &mcp.ToolAnnotations{Title: title}
	switch k {
	case readOnly:
		a.ReadOnlyHint = true
	case additive:
		a.DestructiveHint = new(false)
	case destructive:
		a.DestructiveHint = new(true)
	}
	return a
}

// addTool registers a typed tool whose errors come back as tool errors with
// the CLI's one-line message.
func addTool[In, Out any](ms *mcp.Server, name, title, desc string, k kind, h func(context.Context, *mcp.CallToolRequest, In) (Out, error)) {
	mcp.AddTool(ms, &mcp.Tool{Name: name, Description: desc, Annotations: annotations(title, k)},
		func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
			out, err := h(ctx, req, in)
			if err != nil {
				var zero Out
				return nil, zero, errors.New(oneLine(err))
			}
			return nil, out, nil
		})
}

// oneLine is the message the CLI would print after "banger: ".
func oneLine(err error) string {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
