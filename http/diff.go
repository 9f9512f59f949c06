package http

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// The line diff is computed by github.com/sergi/go-diff (Myers' O(ND)
// algorithm on lines encoded as runes); this file only turns its edit
// script into unified-diff hunks.
const (
	// exhaustiveLines: up to this many lines (both sides together) the
	// search is exhaustive, so the diff is minimal and the same on every
	// run (at most about 0.5 s on the worst input measured: 2,500 lines
	// against 2,500 others). Larger inputs get the library's speedups and
	// a time budget: the diff may then not be minimal, and what is left
	// when diffBudget runs out is shown as removed and re-added.
	exhaustiveLines = 5000
	diffBudget      = time.Second
	// maxDiffLines bounds the lines (both sides together) given to the
	// library, which encodes each distinct line as a rune and panics beyond
	// 1,112,060 of them; larger inputs are shown as removed and re-added.
	maxDiffLines = 1_000_000
)

// UnifiedDiff returns a unified diff turning text a into text b, comparing
// lines, with ctx lines of context around changes (diff -u style). It is ""
// when a and b are equal. A last line without a newline is marked
// "\ No newline at end of file".
func UnifiedDiff(fromLabel, toLabel, a, b string, ctx int) string {
	if a == b {
		return ""
	}
	ctx = max(ctx, 0)
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(a, b, len(al), len(bl))

	var sb strings.Builder
	sb.WriteString("--- " + fromLabel + "\n+++ " + toLabel + "\n")
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		j := i
		var end int
		for {
			for j < len(ops) && ops[j].kind != ' ' {
				j++
			}
			k := j
			for k < len(ops) && ops[k].kind == ' ' {
				k++
			}
			if k < len(ops) && k-j <= 2*ctx {
				j = k
				continue
			}
			end = min(j+ctx, len(ops))
			break
		}
		writeHunk(&sb, ops[start:end], al, bl)
		i = end
	}
	return sb.String()
}

type diffOp struct {
	kind byte // ' ' same, '-' only in a, '+' only in b
	a, b int  // positions in a and b when the op happens
}

// diffLines returns the edit script from a (na lines) to b (nb lines).
func diffLines(a, b string, na, nb int) []diffOp {
	ops := make([]diffOp, 0, na+nb)
	if na+nb > maxDiffLines {
		for i := range na {
			ops = append(ops, diffOp{'-', i, 0})
		}
		for j := range nb {
			ops = append(ops, diffOp{'+', na, j})
		}
		return ops
	}
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0 // exhaustive
	if na+nb > exhaustiveLines {
		dmp.DiffTimeout = diffBudget
	}
	ra, rb, _ := dmp.DiffLinesToRunes(a, b)
	var x, y int
	for _, d := range dmp.DiffMainRunes(ra, rb, false) {
		for range utf8.RuneCountInString(d.Text) { // one rune per line
			switch d.Type {
			case diffmatchpatch.DiffEqual:
				ops = append(ops, diffOp{' ', x, y})
				x, y = x+1, y+1
			case diffmatchpatch.DiffDelete:
				ops = append(ops, diffOp{'-', x, y})
				x++
			case diffmatchpatch.DiffInsert:
				ops = append(ops, diffOp{'+', x, y})
				y++
			}
		}
	}
	return ops
}

func writeHunk(sb *strings.Builder, ops []diffOp, al, bl []string) {
	var na, nb int
	for _, op := range ops {
		if op.kind != '+' {
			na++
		}
		if op.kind != '-' {
			nb++
		}
	}
	rng := func(pos, n int) string {
		if n == 0 {
			return strconv.Itoa(pos) + ",0"
		}
		if n == 1 {
			return strconv.Itoa(pos + 1)
		}
		return strconv.Itoa(pos+1) + "," + strconv.Itoa(n)
	}
	sb.WriteString("@@ -" + rng(ops[0].a, na) + " +" + rng(ops[0].b, nb) + " @@\n")
	for _, op := range ops {
		line := ""
		switch op.kind {
		case '+':
			line = bl[op.b]
		default:
			line = al[op.a]
		}
		sb.WriteByte(op.kind)
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// splitLines splits s after each newline; the last line may lack one.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
