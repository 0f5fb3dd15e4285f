package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a pipeline file. The loaders return one, or several joined with
// errors.Join; errors.As finds them, and Report lists them.
type Error struct {
	// File is the file's path as given to the loader.
	File string
	// Line is the 1-based line the problem is on; 0 when it concerns the whole file.
	Line int
	// Path is the key path of the offending value ("stages[1].timeout"); "" for the whole file.
	Path string
	// Stage is the name of the stage Path is in, when it has a readable one; else "".
	Stage string
	// Msg says what is wrong, and how to fix it where that is not obvious.
	Msg string

	cause error // the I/O error behind Msg, if any
}

// Unwrap returns the I/O error behind e, if any, so that errors.Is(err, fs.ErrNotExist) works.
func (e *Error) Unwrap() error { return e.cause }

// Error reads `file:line: path (stage name): msg`, leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Stage != "" {
			b.WriteString(" (stage ")
			b.WriteString(e.Stage)
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Report renders err, as returned by LoadFile or LoadDir, for people: one line per problem,
// ordered by file and line, then a count. It returns "" for a nil err. Errors that are not
// *Error (an unreadable directory) are listed first, as they are.
func Report(err error) string {
	if err == nil {
		return ""
	}
	var others []string
	var errs []*Error
	for _, leaf := range leaves(err) {
		var e *Error
		if errors.As(leaf, &e) {
			errs = append(errs, e)
		} else {
			others = append(others, leaf.Error())
		}
	}
	sortErrors(errs)
	var b strings.Builder
	files := map[string]bool{}
	for _, s := range others {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	for _, e := range errs {
		files[e.File] = true
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	n := len(others) + len(errs)
	fmt.Fprintf(&b, "%d %s", n, plural(n, "problem", "problems"))
	if len(files) > 0 {
		fmt.Fprintf(&b, " in %d %s", len(files), plural(len(files), "file", "files"))
	}
	b.WriteByte('\n')
	return b.String()
}

// leaves flattens the trees errors.Join builds.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func sortErrors(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// joinErrors sorts errs by file and line and joins them; nil when there are none.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs)
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
