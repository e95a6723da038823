// Package driver is banger's Nomad task driver: each task is one banger VM,
// created, watched, stopped and deleted through the local bangerd socket.
package driver

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"banger/internal/client"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

// Name is the driver's name in job files: driver = "banger".
const Name = "banger"

// Version is the plugin's version, reported to Nomad.
var Version = "0.1.0"

// taskHandleVersion is the version of the state kept in Nomad's task handle.
const taskHandleVersion = 1

// Driver implements drivers.DriverPlugin and drivers.ExecTaskStreamingDriver.
type Driver struct {
	logger hclog.Logger
	ctx    context.Context // ends when the plugin shuts down
	cancel context.CancelFunc

	mu     sync.RWMutex
	config PluginConfig
	daemon *client.Client
	period time.Duration

	tasks  *taskStore
	events *eventer

	// pollInterval is how often a running task's VM state is read.
	pollInterval time.Duration
}

// New returns the driver; Nomad's plugin server calls it once per process.
func New(logger hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		logger:       logger.Named(Name),
		ctx:          ctx,
		cancel:       cancel,
		config:       PluginConfig{Socket: DefaultSocket},
		period:       30 * time.Second,
		tasks:        newTaskStore(),
		events:       newEventer(),
		pollInterval: 2 * time.Second,
	}
	d.daemon = client.New(DefaultSocket)
	return d
}

// Shutdown stops the driver's background work (not the VMs).
func (d *Driver) Shutdown() { d.cancel() }

func (d *Driver) client() *client.Client {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.daemon
}

// PluginInfo describes the plugin to Nomad.
func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) {
	return &base.PluginInfoResponse{
		Type:              base.PluginTypeDriver,
		PluginApiVersions: []string{drivers.ApiVersion010},
		PluginVersion:     Version,
		Name:              Name,
	}, nil
}

// ConfigSchema is the plugin block's schema.
func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return pluginSpec, nil }

// SetConfig applies the plugin block.
func (d *Driver) SetConfig(c *base.Config) error {
	var cfg PluginConfig
	if c != nil && len(c.PluginConfig) != 0 {
		if err := base.MsgPackDecode(c.PluginConfig, &cfg); err != nil {
			return fmt.Errorf("banger driver config: %w", err)
		}
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	period := 30 * time.Second
	if cfg.FingerprintPeriod != "" {
		p, err := time.ParseDuration(cfg.FingerprintPeriod)
		if err != nil || p < time.Second {
			return fmt.Errorf("banger driver config: fingerprint_period %q is not a duration of at least 1s", cfg.FingerprintPeriod)
		}
		period = p
	}
	d.mu.Lock()
	d.config, d.period, d.daemon = cfg, period, client.New(cfg.Socket)
	d.mu.Unlock()
	return nil
}

// TaskConfigSchema is the task config block's schema.
func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskSpec, nil }

// Capabilities: signals go to the VMM, exec goes through the guest agent's
// SSH, the file system is the VM's image, and the network is the VM's own
// (Nomad's group network namespaces cannot hold a VM).
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	return &drivers.Capabilities{
		SendSignals:       true,
		Exec:              true,
		FSIsolation:       drivers.FSIsolationImage,
		NetIsolationModes: []drivers.NetIsolationMode{drivers.NetIsolationModeHost},
		MountConfigs:      drivers.MountConfigSupportNone,
	}, nil
}

// Fingerprint reports the daemon's health and what it can run, at once and
// then every fingerprint_period.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	ch := make(chan *drivers.Fingerprint)
	go func() {
		defer close(ch)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-timer.C:
			}
			fp := d.fingerprint(ctx)
			select {
			case ch <- fp:
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			}
			d.mu.RLock()
			timer.Reset(d.period)
			d.mu.RUnlock()
		}
	}()
	return ch, nil
}

func (d *Driver) fingerprint(ctx context.Context) *drivers.Fingerprint {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := d.client()
	ping, err := c.Ping(ctx)
	if err != nil {
		return &drivers.Fingerprint{
			Health:            drivers.HealthStateUndetected,
			HealthDescription: fmt.Sprintf("bangerd: %v", err),
			Attributes:        map[string]*pstructs.Attribute{},
		}
	}
	attrs := map[string]*pstructs.Attribute{
		"driver.banger.version": pstructs.NewStringAttribute(ping.Version),
		"driver.banger.socket":  pstructs.NewStringAttribute(c.Socket()),
	}
	if ping.Accel != "" {
		attrs["driver.banger.accelerator"] = pstructs.NewStringAttribute(ping.Accel)
	}
	var names []string
	if images, err := c.ImageList(ctx); err == nil {
		for _, img := range images {
			attrs["driver.banger.image."+img.Name] = pstructs.NewBoolAttribute(true)
			names = append(names, img.Name)
		}
	} else {
		d.logger.Warn("fingerprint: list images", "error", err)
	}
	sort.Strings(names)
	attrs["driver.banger.images"] = pstructs.NewIntAttribute(int64(len(names)), "")
	if kernels, err := c.KernelList(ctx); err == nil {
		for _, k := range kernels {
			attrs["driver.banger.kernel."+k.Name] = pstructs.NewBoolAttribute(true)
		}
	} else {
		d.logger.Warn("fingerprint: list kernels", "error", err)
	}
	return &drivers.Fingerprint{
		Attributes:        attrs,
		Health:            drivers.HealthStateHealthy,
		HealthDescription: drivers.DriverHealthy,
	}
}

// TaskEvents streams task events (create stages) to Nomad.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.events.subscribe(ctx, d.ctx), nil
}
