//go:build linux

package main

import (
	"math"
	"sort"
	"time"
)

// Stat summarises one series of samples in milliseconds.
type Stat struct {
	N      int     `json:"n"`
	Errors int     `json:"errors,omitempty"`
	Median float64 `json:"median_ms"`
	P90    float64 `json:"p90_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
	Mean   float64 `json:"mean_ms"`
	// FirstError keeps one failure message so a broken plugin is visible.
	FirstError string `json:"first_error,omitempty"`
	// Blocks holds each block's median when the samples were taken in
	// blocks at different times (a level measured again later), so a reader
	// sees how far the machine moved between them.
	Blocks []float64 `json:"block_medians_ms,omitempty"`
}

// series collects durations and errors for one side of a comparison.
type series struct {
	d      []time.Duration
	errors int
	first  string
	starts []int // index in d where each block began
}

// block starts a new block of samples; sample calls it once per pass.
func (s *series) block() {
	if n := len(s.starts); n > 0 && s.starts[n-1] == len(s.d) {
		return // the previous block got no samples: one block still
	}
	s.starts = append(s.starts, len(s.d))
}

func (s *series) add(d time.Duration, err error) {
	if err != nil {
		s.errors++
		if s.first == "" {
			s.first = err.Error()
		}
		return
	}
	s.d = append(s.d, d)
}

func (s *series) stat() *Stat {
	st := &Stat{N: len(s.d), Errors: s.errors, FirstError: s.first}
	if len(s.d) == 0 {
		return st
	}
	ms := make([]float64, len(s.d))
	sum := 0.0
	for i, d := range s.d {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	sort.Float64s(ms)
	st.Median = quantile(ms, 0.5)
	st.P90 = quantile(ms, 0.9)
	st.Min, st.Max = ms[0], ms[len(ms)-1]
	st.Mean = sum / float64(len(ms))
	if len(s.starts) > 1 {
		for i, from := range s.starts {
			to := len(s.d)
			if i+1 < len(s.starts) {
				to = s.starts[i+1]
			}
			blk := make([]float64, 0, to-from)
			for _, d := range s.d[from:to] {
				blk = append(blk, float64(d)/float64(time.Millisecond))
			}
			if len(blk) > 0 {
				sort.Float64s(blk)
				st.Blocks = append(st.Blocks, quantile(blk, 0.5))
			}
		}
	}
	return st
}

// quantile interpolates linearly between the closest ranks of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return sorted[lo]*(1-frac) + sorted[hi]*frac
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio returns a/b, or NaN when either side has no data.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return a / b
}
