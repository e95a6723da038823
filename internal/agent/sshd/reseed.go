package sshd

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"banger/internal/agent/proto"
)

// reseed mixes host entropy into the guest's RNG and makes the kernel
// reseed its CRNG at once: a guest restored from memory (resume, fork)
// would otherwise go on drawing the bytes it drew before.
func (s *server) reseed(entropy []byte) error {
	if len(entropy) < proto.MinEntropy || len(entropy) > proto.MaxEntropy {
		return fmt.Errorf("entropy must be %d to %d bytes, got %d", proto.MinEntropy, proto.MaxEntropy, len(entropy))
	}
	if err := s.sys.reseedRNG(entropy); err != nil {
		return err
	}
	s.log.Info("rng reseeded from host entropy", "bytes", len(entropy))
	return nil
}

// reseedKernelRNG credits entropy to the kernel's pool (RNDADDENTROPY) and
// forces a CRNG reseed (RNDRESEEDCRNG); both need CAP_SYS_ADMIN.
func reseedKernelRNG(entropy []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reseed rng: %w", err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(entropy)+3)
	binary.NativeEndian.PutUint32(buf[0:], uint32(len(entropy)*8))
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(entropy)))
	copy(buf[8:], entropy)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("reseed rng: add entropy: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0); e != 0 {
		return fmt.Errorf("reseed rng: reseed crng: %w", e)
	}
	return nil
}
