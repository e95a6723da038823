package main

import (
	"fmt"
	"math"
	"sort"
)

// Stat summarises the samples of one measurement.
type Stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	N       int       `json:"n"`
	Samples []float64 `json:"samples"`
}

// summarize computes median, min and max; nil for no samples.
func summarize(samples []float64) *Stat {
	if len(samples) == 0 {
		return nil
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	return &Stat{Median: percentile(s, 50), Min: s[0], Max: s[len(s)-1], N: len(s), Samples: samples}
}

// percentile of sorted samples, nearest-rank with linear interpolation.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// pct returns percentile p of unsorted samples.
func pct(samples []float64, p float64) float64 {
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	return percentile(s, p)
}

// ratios divides a by b pair by pair (run i against run i).
func ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if b[i] != 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// Row is one line of the results table: banger's figure, its baseline's
// figure measured in the same run, and their pair-by-pair ratio.
type Row struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Unit     string `json:"unit"`
	Banger   *Stat  `json:"banger,omitempty"`
	Baseline string `json:"baseline,omitempty"`
	Base     *Stat  `json:"baseline_stat,omitempty"`
	Ratio    *Stat  `json:"ratio,omitempty"`
	Goal     string `json:"goal,omitempty"`
	Note     string `json:"note,omitempty"`
}

// pairRow builds a row from paired samples.
func pairRow(id, name, unit string, banger []float64, baseline string, base []float64) Row {
	r := Row{ID: id, Name: name, Unit: unit, Banger: summarize(banger), Baseline: baseline, Base: summarize(base)}
	if len(base) > 0 {
		r.Ratio = summarize(ratios(banger, base))
	}
	return r
}

// fmtStat renders "median (min–max)" in the row's unit.
func fmtStat(s *Stat, unit string) string {
	if s == nil {
		return "–"
	}
	if s.N == 1 {
		return fmtNum(s.Median) + " " + unit
	}
	return fmt.Sprintf("%s %s (%s–%s)", fmtNum(s.Median), unit, fmtNum(s.Min), fmtNum(s.Max))
}

func fmtRatio(s *Stat) string {
	if s == nil {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
