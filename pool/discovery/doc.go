// Package discovery finds backends in DNS and hands each change of them to
// the pool.
//
// A source is a DNS name read in one of two ways. KindA takes every A and
// AAAA address of the name, with the source's port: a Kubernetes headless
// service has one per ready pod. KindSRV takes the SRV records of the name
// with the lowest priority value, each record's target resolved to its
// addresses by the same server and paired with the record's port and weight:
// Consul's DNS interface answers so, and its node names resolve only through
// it. Every name is looked up as written, as an absolute name: the search
// list of resolv.conf would multiply the questions by its length and send
// names to a Consul agent that it cannot know.
//
// Each refresh's answer is compared with the source's last set; when it
// differs, or at the first success, the whole new set goes to the Sink in one
// call, sorted by URL. A failed lookup (timeout, SERVFAIL, refused, network
// error) changes nothing: the source is marked failing and keeps its last
// set. An answer of "no such host" or "no records" is believed only once it
// has lasted GraceRefreshes refresh periods with no success in between, so
// that a DNS server that restarts with an empty zone does not empty the pool;
// until then the source counts as failing. Status shows each source as its
// goroutine last left it, without a lock.
//
// Resolution uses Go's own resolver (net.Resolver with PreferGo), asking
// Config.Resolver when it is set. Lookups never run on the request path or
// in the pool's owner loop.
//
// Goroutines: Watcher.Run is a loop the caller runs (cmd/proxy does, in its
// errgroup). It starts one goroutine per source, each with its own ticker, so
// that a source whose server is slow or down does not hold the others back,
// and waits for all of them before it returns. A refresh of an SRV source
// starts a goroutine per distinct target, at most targetLookups at once, and
// waits for them before it ends, so none outlives its refresh. Each socket
// the resolver opens arms a context.AfterFunc that sets its deadline when the
// lookup is given up, so that the net package's own lookup goroutine ends
// then rather than seconds later; it only sets a deadline, and nothing waits
// for it. Everything
// stops when Run's context ends, or when the sink fails, which ends every
// source's goroutine and makes Run return the error.
package discovery
