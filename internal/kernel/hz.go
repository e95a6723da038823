package kernel

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ConfigFile is the kernel's build configuration, kept beside its image
// when the kernel came with one.
const ConfigFile = "config"

// maxConfigBytes bounds reading a config file (a distribution's is about
// 250 KB).
const maxConfigBytes = 4 << 20

// HZ is CONFIG_HZ of the kernel whose image is kernelPath, read from the
// config file beside it; 0 when there is none or it names no usable value.
func HZ(kernelPath string) int {
	f, err := os.Open(filepath.Join(filepath.Dir(kernelPath), ConfigFile))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxConfigBytes))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ=")
		if !ok {
			continue
		}
		hz, err := strconv.Atoi(v)
		if err != nil || hz < 24 || hz > 10000 {
			return 0
		}
		return hz
	}
	return 0
}
