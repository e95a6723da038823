package testutil

import (
	"bytes"
	"fmt"
	"strconv"
)

// SparseMember is one file of a tar stored in GNU sparse 1.0 format under
// PAX headers (GNU.sparse.major/minor/name/realsize and the map at the start
// of the data): RealSize bytes long, zero everywhere but Data at Offset.
type SparseMember struct {
	Name     string
	RealSize int64
	Offset   int64
	Data     []byte
}

// PlainMember is an ordinary regular file.
type PlainMember struct {
	Name string
	Body []byte
}

// SparseTar builds a tar by hand (archive/tar cannot write sparse files)
// holding the given members, each a SparseMember or a PlainMember.
func SparseTar(members ...any) []byte {
	var b bytes.Buffer
	for _, m := range members {
		switch m := m.(type) {
		case SparseMember:
			pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
				paxRecord("GNU.sparse.name", m.Name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(m.RealSize, 10))
			writeEntry(&b, "PaxHeaders.0/"+m.Name, 'x', []byte(pax))
			sparseMap := padded([]byte(fmt.Sprintf("1\n%d\n%d\n", m.Offset, len(m.Data))))
			writeEntry(&b, "GNUSparseFile.0/"+m.Name, '0', append(sparseMap, m.Data...))
		case PlainMember:
			writeEntry(&b, m.Name, '0', m.Body)
		default:
			panic(fmt.Sprintf("SparseTar: unknown member %T", m))
		}
	}
	b.Write(make([]byte, 1024)) // end of archive
	return b.Bytes()
}

// paxRecord is "LEN key=value\n" where LEN counts the whole record.
func paxRecord(k, v string) string {
	rest := " " + k + "=" + v + "\n"
	n := len(rest) + 1
	for n != len(strconv.Itoa(n))+len(rest) {
		n = len(strconv.Itoa(n)) + len(rest)
	}
	return strconv.Itoa(n) + rest
}

// writeEntry writes a ustar header of type flag and the padded data.
func writeEntry(b *bytes.Buffer, name string, flag byte, data []byte) {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", len(data)))
	copy(h[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	h[156] = flag
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	b.Write(h)
	b.Write(padded(data))
}

func padded(p []byte) []byte {
	if r := len(p) % 512; r != 0 {
		p = append(p, make([]byte, 512-r)...)
	}
	return p
}
