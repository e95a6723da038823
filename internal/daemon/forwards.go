package daemon

import (
	"context"
	"os"
	"reflect"
	"time"

	"banger/internal/api"
	"banger/internal/forward"
	"banger/internal/model"
	"banger/internal/network"
	"banger/internal/server"
)

// forwardVMs is the VM service with port forwarding attached: create and
// set take the forward mode, delete ends the VM's forwards, ports shows
// what is forwarded where.
type forwardVMs struct {
	server.VMService
	fw *forward.Manager
}

// forwards starts the forward manager and brings back saved forwards.
func (d *Daemon) forwards(ctx context.Context, vms server.VMService, st forward.VMs, dial forward.Dialer) (*forward.Manager, server.VMService) {
	bridge := os.Getenv("BANGER_BRIDGE")
	rules := network.OwnerRules{Table: network.OwnerTableName(bridge)}
	fw := forward.New(ctx, st, rules, dial, d.log)
	if err := fw.Load(ctx); err != nil {
		d.log.Warn("forwards", "err", err)
	}
	d.closer = append(d.closer, fw.Close)
	return fw, forwardVMs{VMService: vms, fw: fw}
}

func (f forwardVMs) Create(ctx context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	if err := forward.ValidMode(p.Forward); err != nil {
		return api.VMCreateOperation{}, err
	}
	op, err := f.VMService.Create(ctx, p)
	if err != nil || (p.Forward != api.ForwardAuto && !p.ForwardRemap) {
		return op, err
	}
	// The VM's folder exists once the create is done: the mode is set then.
	mode, remap := p.Forward, p.ForwardRemap
	bg := context.WithoutCancel(ctx)
	go func() {
		for {
			cur, err := f.VMService.CreateStatus(bg, op.ID)
			if err != nil {
				return
			}
			if cur.Done {
				if cur.Success {
					if err := f.fw.SetMode(bg, cur.VMID, mode, &remap); err != nil {
						f.fw.Log().Warn("forward mode", "vm", cur.VMName, "err", err)
					}
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return op, nil
}

func (f forwardVMs) Set(ctx context.Context, p api.VMSetParams) (model.VMRecord, error) {
	if err := forward.ValidMode(p.Forward); err != nil {
		return model.VMRecord{}, err
	}
	var vm model.VMRecord
	var err error
	if rest := withoutForward(p); !reflect.DeepEqual(rest, api.VMSetParams{IDOrName: p.IDOrName}) {
		vm, err = f.VMService.Set(ctx, p)
	} else {
		vm, err = f.VMService.Show(ctx, p.IDOrName)
	}
	if err != nil || (p.Forward == "" && p.ForwardRemap == nil) {
		return vm, err
	}
	return vm, f.fw.SetMode(ctx, vm.ID, p.Forward, p.ForwardRemap)
}

// withoutForward is p less the forward settings: what the VM service sets.
func withoutForward(p api.VMSetParams) api.VMSetParams {
	p.Forward, p.ForwardRemap = "", nil
	return p
}

func (f forwardVMs) Delete(ctx context.Context, p api.VMDeleteParams) error {
	vm, err := f.VMService.Show(ctx, p.IDOrName)
	if err != nil {
		return err
	}
	if err := f.VMService.Delete(ctx, p); err != nil {
		return err
	}
	f.fw.DropVM(vm.ID)
	return nil
}

// forwardGuests is the guest service with forwards shown in ports.
type forwardGuests struct {
	server.GuestService
	fw  *forward.Manager
	vms server.VMService
}

func (f forwardGuests) Ports(ctx context.Context, ref string) (api.VMPortsResult, error) {
	res, err := f.GuestService.Ports(ctx, ref)
	if err != nil {
		return res, err
	}
	if vm, err := f.vms.Show(ctx, ref); err == nil {
		f.fw.Annotate(vm.ID, res.Ports)
	}
	return res, nil
}
