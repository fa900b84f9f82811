package redisbackend

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

var _ driver.BatchRefresher = (*conn)(nil)

// refreshBatch is how many leases one script of a batched refresh
// extends: a batch of more is sent as several scripts in one pipeline,
// so that no script blocks the server for long.
const refreshBatch = 500

// refreshMany extends many leases as the refresh script does each.
// KEYS: lock, readers, for each lease. ARGV: "TOKEN:NONCE:" (or
// "TOKEN:"), ttl ms, for each lease. -> for each lease, 1 extended, 0 not
// held.
var refreshMany = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
` + luaNow + luaReader + luaExpireReaders + `
local res = {}
for i = 1, #KEYS / 2 do
  local k, r, p, ttl = KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 * i - 1], ARGV[2 * i]
  local v = redis.call('GET', k)
  res[i] = 0
  if v and string.sub(v, 1, #p) == p then
    redis.call('PEXPIRE', k, ttl)
    res[i] = 1
  else
    local e, score = reader(r, p)
    if e then
      local n = now()
      if score <= n then
        redis.call('ZREM', r, e)
      else
        redis.call('ZADD', r, n + tonumber(ttl), e)
        expireReaders(r)
        res[i] = 1
      end
    end
  end
end
return res
`)

// RefreshLocks extends many leases in one round trip: one pipeline of
// scripts, each over up to refreshBatch leases, each lease checked as
// RefreshLock checks it.
func (c *conn) RefreshLocks(ctx context.Context, locks []driver.LockRef, errs []error) error {
	n := (len(locks) + refreshBatch - 1) / refreshBatch
	keys := make([][]string, n)
	args := make([][]any, n)
	for i, l := range locks {
		j := i / refreshBatch
		keys[j] = append(keys[j], c.ks.lock(l.Key), c.ks.readers(l.Key))
		args[j] = append(args[j], c.holdPrefix(l.Key, l.Token), ms(l.TTL))
	}
	cmds := make([]*redis.Cmd, n)
	send := func(ctx context.Context, byBody bool) error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := range cmds {
				if byBody {
					cmds[j] = refreshMany.Eval(ctx, p, keys[j], args[j]...)
				} else {
					cmds[j] = refreshMany.EvalSha(ctx, p, keys[j], args[j]...)
				}
			}
			return nil
		})
		return err
	}
	_, err := c.do(ctx, func(ctx context.Context) error {
		err := send(ctx, false)
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// The server does not know the script (a restart, a
			// failover): send it once with its body.
			err = send(ctx, true)
		}
		return err
	})
	if err != nil {
		return err
	}
	for j, cmd := range cmds {
		res, err := cmd.Int64Slice()
		if err != nil || len(res) != len(keys[j])/2 {
			return driver.Errorf(driver.CodeInternal, "unexpected batched refresh reply %v (%v)", cmd.Val(), err)
		}
		for k, ok := range res {
			i := j*refreshBatch + k
			errs[i] = nil
			if ok == 0 {
				errs[i] = driver.Errorf(driver.CodeNotHeld, "lock %q is no longer held with token %d (expired, broken or lost by a failover)", locks[i].Key, locks[i].Token)
			}
		}
	}
	return nil
}
