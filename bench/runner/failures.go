package main

import (
	"fmt"
	"strings"
)

// runFailures collects the runs of one row that failed: a failed run is a
// result (reported in the row's note), not a reason to drop the row.
type runFailures struct {
	n     int
	first error
}

func (f *runFailures) add(err error) {
	if err == nil {
		return
	}
	if f.first == nil {
		f.first = err
	}
	f.n++
}

// note says how many of total runs failed and why the first did; "" for none.
func (f *runFailures) note(total int) string {
	if f.n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d runs failed (first: %s)", f.n, total, firstLine(f.first.Error()))
}

// failedRow is a row whose measurement could not be made at all.
func failedRow(id, name string, err error) Row {
	return Row{ID: id, Name: name, Note: "failed: " + firstLine(err.Error())}
}

// noisyBaseline says when the baseline's spread, (max-min)/median, is so
// wide that its ratio means little (a busy host during the floor runs).
func noisyBaseline(r Row) string {
	if r.Base == nil || r.Base.N < 2 || r.Base.Median <= 0 {
		return ""
	}
	spread := (r.Base.Max - r.Base.Min) / r.Base.Median
	if spread <= 0.3 {
		return ""
	}
	return fmt.Sprintf("baseline spread %.0f%% of its median: ratio not meaningful", spread*100)
}

// joinNotes joins non-empty notes with "; ".
func joinNotes(notes ...string) string {
	out := ""
	for _, n := range notes {
		if n == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += n
	}
	return out
}

// firstLine is s up to its first newline: one line of an error for a table cell.
func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }
