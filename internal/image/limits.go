package image

import "golang.org/x/sys/unix"

// DefaultMaxImageSize bounds the expanded size of an imported or pulled
// image when the daemon is given no --max-image-size.
const DefaultMaxImageSize int64 = 64 << 30

// SetMaxImageBytes sets the largest expanded image (0: DefaultMaxImageSize).
// Blobs stored on import or pull are bounded by it too.
func (s *Service) SetMaxImageBytes(n int64) {
	if n <= 0 {
		n = DefaultMaxImageSize
	}
	s.maxImage = n
	s.oci.SetMaxBytes(n)
}

// imageLimit is the expanded size an image may reach now: the configured
// maximum, or less when the state filesystem has less free space (the
// files are unpacked there before the ext4 image is made).
func (s *Service) imageLimit() sizeLimit {
	max := s.maxImage
	if max <= 0 {
		max = DefaultMaxImageSize
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.stateDir, &st); err == nil {
		if free := int64(st.Bavail) * st.Bsize; free < max {
			return sizeLimit{max: free, freeOn: s.stateDir}
		}
	}
	return sizeLimit{max: max}
}
