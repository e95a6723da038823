package mountinfo

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/mnt/lower
30 22 254:16 / /root rw,relatime shared:9 - ext4 /dev/vdc rw
31 22 254:0 / /run/banger/my\040dir rw - ext4 /dev/vda ro
`
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Target: "/", FSType: "overlay", Source: "overlay"},
		{Target: "/root", FSType: "ext4", Source: "/dev/vdc"},
		{Target: "/run/banger/my dir", FSType: "ext4", Source: "/dev/vda"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if _, err := Parse(strings.NewReader("garbage line\n")); err == nil {
		t.Fatal("bad line accepted")
	}
}
