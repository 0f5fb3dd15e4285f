package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/platoim/plato/sdk/protocol"
)

// echoPusher pushes for the baseline: one connection per echo server, logged in as echoPushApp,
// each push an Uplink listing dids. Device i is on echo server i % len(servers), as the fleet
// assigns endpoints, so a push goes only to the server holding its devices.
type echoPusher struct {
	appID string
	conns []*echoPushConn
}

func newEchoPusher(endpoints []string, appID string, worker int) (*echoPusher, error) {
	p := &echoPusher{appID: appID}
	for i, ep := range endpoints {
		c, err := dialEchoPush(ep, fmt.Sprintf("pusher-%d-%d", worker, i))
		if err != nil {
			p.close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

func (p *echoPusher) push(ctx context.Context, targets []pushTarget, payload []byte) []string {
	out := make([]string, len(targets))
	// Group target positions by server, then send in chunks of at most maxEchoPush.
	groups := make([][]int, len(p.conns))
	for i, t := range targets {
		s := t.idx % len(p.conns)
		groups[s] = append(groups[s], i)
	}
	var wg sync.WaitGroup
	for s, pos := range groups {
		for lo := 0; lo < len(pos); lo += maxEchoPush {
			chunk := pos[lo:min(lo+maxEchoPush, len(pos))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				dids := make([]string, len(chunk))
				for i, k := range chunk {
					dids[i] = targets[k].did
				}
				res, err := p.conns[s].call(ctx, encodeEchoPush(p.appID, dids, payload))
				for i, k := range chunk {
					switch {
					case err != nil:
						out[k] = "push error: " + errClass(err)
					case i >= len(res) || res[i] != '1':
						out[k] = "push OFFLINE"
					}
				}
			}()
		}
	}
	wg.Wait()
	return out
}

func (p *echoPusher) close() {
	for _, c := range p.conns {
		c.nc.Close()
	}
}

// echoPushConn is a connection with many push calls in flight, matched to answers by seq.
type echoPushConn struct {
	nc   net.Conn
	mu   sync.Mutex
	seq  uint64
	wait map[uint64]chan string
	err  error // set when the reader ended
}

func dialEchoPush(addr, did string) (*echoPushConn, error) {
	nc, err := net.DialTimeout("tcp", addr, loginTimeout)
	if err != nil {
		return nil, fmt.Errorf("baseline pusher: %w", err)
	}
	c := &echoPushConn{nc: nc, wait: map[uint64]chan string{}}
	body := (&protocol.Login{AppID: echoPushApp, DID: did}).Append(nil)
	if _, err := nc.Write(protocol.AppendFrame(nil, protocol.SigLogin, 0, 0, body)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("baseline pusher: %w", err)
	}
	go c.readLoop(bufio.NewReaderSize(nc, 16<<10))
	return c, nil
}

func (c *echoPushConn) readLoop(br *bufio.Reader) {
	for {
		f, _, err := protocol.ReadFrame(br, protocol.DefaultMaxBody, nil)
		if err != nil {
			c.mu.Lock()
			c.err = err
			for seq, ch := range c.wait {
				close(ch)
				delete(c.wait, seq)
			}
			c.mu.Unlock()
			return
		}
		if f.Signal != protocol.SigUplinkAck {
			continue // the LoginAck
		}
		var ack protocol.Ack
		_ = ack.Decode(f.Body)
		c.mu.Lock()
		ch := c.wait[f.Seq]
		delete(c.wait, f.Seq)
		c.mu.Unlock()
		if ch != nil {
			ch <- ack.Message
		}
	}
}

// call sends one push and waits for its answer.
func (c *echoPushConn) call(ctx context.Context, body []byte) (string, error) {
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return "", c.err
	}
	c.seq++
	seq := c.seq
	c.wait[seq] = ch
	_, err := c.nc.Write(protocol.AppendFrame(nil, protocol.SigUplink, 0, seq, body))
	c.mu.Unlock()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	select {
	case res, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("baseline pusher connection ended")
		}
		return res, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.wait, seq)
		c.mu.Unlock()
		return "", ctx.Err()
	}
}
