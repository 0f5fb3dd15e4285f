package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Two test processes may use sdk/js at once (two `make test` in one checkout, or `go test
// ./cmd/plato` beside one): `npm ci` empties node_modules and `npm run build` rewrites dist, under
// the other's running node tests. So a process installs and builds only under an exclusive lock
// (sdk/js/.test.lock), and only when node_modules and dist are not those of the current lock file,
// sources and Node (a stamp in node_modules); then it holds the lock shared until it exits, so
// that no other process rebuilds under it.

// jsReady is the lock file, held shared for the rest of the process once sdk/js is ready.
var jsReady *os.File

// prepareJS makes sdk/js (dir) ready for node's tests: npm ci and npm run build when its stamp is
// not the current one. nodeVersion is part of the stamp.
func prepareJS(dir, nodeVersion string) error {
	f, err := os.OpenFile(filepath.Join(dir, ".test.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening sdk/js's test lock: %w", err)
	}
	lock := func(how int) error {
		for {
			if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
				return err
			}
		}
	}
	want, err := jsStamp(dir, nodeVersion)
	if err != nil {
		f.Close()
		return err
	}
	if err := lock(syscall.LOCK_SH); err != nil {
		f.Close()
		return fmt.Errorf("locking sdk/js shared: %w", err)
	}
	if !jsUpToDate(dir, want) {
		// Every other process using sdk/js holds it shared until it exits: wait for them. Ours goes
		// first, so that two processes wanting to install do not wait for each other.
		_ = lock(syscall.LOCK_UN)
		if err := lock(syscall.LOCK_EX); err != nil {
			f.Close()
			return fmt.Errorf("locking sdk/js to install: %w", err)
		}
		if !jsUpToDate(dir, want) {
			for _, args := range [][]string{{"npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"}, {"npm", "run", "build"}} {
				cmd := exec.Command(args[0], args[1:]...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					f.Close()
					return fmt.Errorf("%s in sdk/js: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "node_modules", ".plato-test-stamp"), []byte(want), 0o644); err != nil {
				f.Close()
				return fmt.Errorf("stamping sdk/js/node_modules: %w", err)
			}
		}
		// Not atomic (flock(2)): a process that takes it exclusively in between finds the stamp
		// current and writes nothing.
		if err := lock(syscall.LOCK_SH); err != nil {
			f.Close()
			return fmt.Errorf("locking sdk/js shared: %w", err)
		}
	}
	jsReady = f
	return nil
}

// jsUpToDate reports whether node_modules and dist were made from what want stamps.
func jsUpToDate(dir, want string) bool {
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", ".plato-test-stamp"))
	if err != nil || string(got) != want {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "dist", "index.js"))
	return err == nil
}

// jsStamp hashes what node_modules and dist are made from: the package files, the TypeScript
// configuration, every source file, and Node's version.
func jsStamp(dir, nodeVersion string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "node %s\n", nodeVersion)
	add := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	}
	for _, name := range []string{"package.json", "package-lock.json", "tsconfig.json"} {
		if err := add(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("stamping sdk/js: %w", err)
		}
	}
	err := filepath.WalkDir(filepath.Join(dir, "src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return add(path)
	})
	if err != nil {
		return "", fmt.Errorf("stamping sdk/js: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
