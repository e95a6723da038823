package vm

import (
	"os"
	"strings"
)

// EnvGuestKernelArgs names extra guest kernel arguments appended to banger's
// command line, for debugging boots (e.g. "loglevel=7 initcall_debug"). The
// daemon's environment is root's, so this gives callers nothing.
const EnvGuestKernelArgs = "BANGER_GUEST_KERNEL_ARGS"

// baseCmdline is the guest kernel command line banger boots with. loglevel=5
// (after quiet's 4) lets KERN_WARNING lines through, one or two in a normal
// boot, so the watchdog sees the kernel's warnings that mean a boot is lost
// (fatalLines). cryptomgr.notests skips the crypto API's self-tests of every
// built-in algorithm at boot, and the initcall_blacklist entry the one init
// of the KDF108 code that only runs its self-test: under TCG they took 0.8 s
// of a 2.3–3 s kernel boot (docs/performance.md, "The kernel's own time").
// The self-tests check the kernel's implementations against known answers;
// they provide nothing the guest uses (the agent's cryptography is Go's own).
const baseCmdline = "console=ttyS0 reboot=t panic=-1 quiet loglevel=5 cryptomgr.notests initcall_blacklist=crypto_kdf108_init"

// guestCmdline is baseCmdline plus EnvGuestKernelArgs, when set.
func guestCmdline() string {
	extra := strings.Join(strings.Fields(os.Getenv(EnvGuestKernelArgs)), " ")
	if extra == "" {
		return baseCmdline
	}
	return baseCmdline + " " + extra
}
