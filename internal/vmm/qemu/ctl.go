package qemu

import "banger/internal/vmm"

// The control port: a virtio-serial port named ControlPortName whose host
// end is a unix socket in the run directory (ControlSocket). The guest
// agent serves the agent protocol on it. It needs no network, so a clone
// restored from a snapshot is re-identified over it before its tap joins
// the bridge; it survives a migration.

// ControlSocket is the control port's socket in the run directory.
const ControlSocket = vmm.ControlSocket

// ControlPortName is the virtio-serial port's name the guest sees.
const ControlPortName = "banger.ctl"

// WithControlSocket adds the control port served on a unix socket at path.
func (c Command) WithControlSocket(path string) Command { c.ctlSock = path; return c }

func controlArgs(path string) []string {
	return []string{"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=ctl0,path=" + optValue(path) + ",server=on,wait=off",
		"-device", "virtserialport,chardev=ctl0,name=" + ControlPortName}
}
