// bench/peer_tbb_graph.cpp - the oneTBB flow graphs a careful TBB user would write for scenarios (a), (b), (c).
//
// Built only with libtbb-dev and a C++ compiler (bench/CMakeLists.txt); bench/peer_tbb.c turns the runs into
// rows. Each graph does the work of its SAGE scenario (bench/pipelines.h: map v * 3, keep (v & 15) != 15, count
// and sum; (c) a counter per key of v % KEYED_KEYS) on 0..n-1, one record per message or 4096 per message (a
// std::vector), and reports what its sinks counted so the caller checks it against what SAGE's runs must give.
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

extern "C" {
#include "peer_tbb.h"
}

namespace flow = oneapi::tbb::flow;

namespace {

constexpr std::size_t kBatch = 4096;
constexpr int kInFlight = 8; // batches in flight per graph: a bounded graph, as SAGE's channels are

inline std::int64_t work_map(std::int64_t v) { return v * 3; }
inline bool work_keep(std::int64_t v) { return (v & 15) != 15; }

// A 64-bit mixer (splitmix64's finalizer): what a careful user puts in front of std::unordered_map for integer keys.
struct mixed_hash {
    std::size_t operator()(std::uint64_t x) const
    {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        return static_cast<std::size_t>(x);
    }
};

using batch = std::vector<std::int64_t>;
using clock = std::chrono::steady_clock;

// The source's next message: up to kBatch record numbers from start (below n), or nullptr when none are left.
std::shared_ptr<batch> batch_from(std::uint64_t start, std::uint64_t n)
{
    if (start >= n)
        return nullptr;
    auto b = std::make_shared<batch>();
    std::uint64_t end = start + kBatch < n ? start + kBatch : n;
    b->reserve(static_cast<std::size_t>(end - start));
    for (std::uint64_t v = start; v < end; v++)
        b->push_back(static_cast<std::int64_t>(v));
    return b;
}

double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

// (a) map -> filter -> sink, one thread's worth of work; per record or per batch.
void run_chain(int batched, std::uint64_t n, peer_tbb_result *r)
{
    flow::graph g;
    std::uint64_t count = 0, sum = 0;
    auto t0 = clock::now();
    if (!batched) {
        std::uint64_t next = 0;
        flow::input_node<std::int64_t> src(g, [&](oneapi::tbb::flow_control &fc) -> std::int64_t {
            if (next >= n) {
                fc.stop();
                return 0;
            }
            return static_cast<std::int64_t>(next++);
        });
        flow::function_node<std::int64_t, std::int64_t> map(g, flow::serial, [](std::int64_t v) { return work_map(v); });
        flow::multifunction_node<std::int64_t, std::tuple<std::int64_t>> filter(
            g, flow::serial, [](std::int64_t v, flow::multifunction_node<std::int64_t, std::tuple<std::int64_t>>::output_ports_type &out) {
                if (work_keep(v))
                    std::get<0>(out).try_put(v);
            });
        flow::function_node<std::int64_t, flow::continue_msg> sink(g, flow::serial, [&](std::int64_t v) {
            count++;
            sum += static_cast<std::uint64_t>(v);
            return flow::continue_msg();
        });
        flow::make_edge(src, map);
        flow::make_edge(map, filter);
        flow::make_edge(flow::output_port<0>(filter), sink);
        src.activate();
        g.wait_for_all();
    } else {
        std::uint64_t next = 0;
        flow::input_node<std::shared_ptr<batch>> src(g, [&](oneapi::tbb::flow_control &fc) -> std::shared_ptr<batch> {
            auto b = batch_from(next, n);
            if (!b)
                fc.stop();
            else
                next += b->size();
            return b;
        });
        flow::limiter_node<std::shared_ptr<batch>> limit(g, kInFlight);
        flow::function_node<std::shared_ptr<batch>, std::shared_ptr<batch>> map(g, flow::serial, [](std::shared_ptr<batch> b) {
            for (auto &v : *b)
                v = work_map(v);
            return b;
        });
        flow::function_node<std::shared_ptr<batch>, std::shared_ptr<batch>> filter(g, flow::serial, [](std::shared_ptr<batch> b) {
            std::size_t k = 0;
            for (std::int64_t v : *b)
                if (work_keep(v))
                    (*b)[k++] = v;
            b->resize(k);
            return b;
        });
        flow::function_node<std::shared_ptr<batch>, flow::continue_msg> sink(g, flow::serial, [&](std::shared_ptr<batch> b) {
            count += b->size();
            for (std::int64_t v : *b)
                sum += static_cast<std::uint64_t>(v);
            return flow::continue_msg();
        });
        flow::make_edge(src, limit);
        flow::make_edge(limit, map);
        flow::make_edge(map, filter);
        flow::make_edge(filter, sink);
        flow::make_edge(sink, limit.decrementer());
        src.activate();
        g.wait_for_all();
    }
    r->wall_s = seconds_since(t0);
    r->count = count;
    r->sum = sum;
}

// (b) one source, two counting sink instances (concurrency 2: TBB hands each message to a free one).
void run_rebalance(int batched, std::uint64_t n, peer_tbb_result *r)
{
    flow::graph g;
    std::atomic<std::uint64_t> count{0}, sum{0};
    auto t0 = clock::now();
    std::uint64_t next = 0;
    if (!batched) {
        flow::input_node<std::int64_t> src(g, [&](oneapi::tbb::flow_control &fc) -> std::int64_t {
            if (next >= n) {
                fc.stop();
                return 0;
            }
            return static_cast<std::int64_t>(next++);
        });
        flow::function_node<std::int64_t, flow::continue_msg> sink(g, 2, [&](std::int64_t v) {
            count.fetch_add(1, std::memory_order_relaxed);
            sum.fetch_add(static_cast<std::uint64_t>(v), std::memory_order_relaxed);
            return flow::continue_msg();
        });
        flow::make_edge(src, sink);
        src.activate();
        g.wait_for_all();
    } else {
        flow::input_node<std::shared_ptr<batch>> src(g, [&](oneapi::tbb::flow_control &fc) -> std::shared_ptr<batch> {
            auto b = batch_from(next, n);
            if (!b)
                fc.stop();
            else
                next += b->size();
            return b;
        });
        flow::limiter_node<std::shared_ptr<batch>> limit(g, kInFlight);
        flow::function_node<std::shared_ptr<batch>, flow::continue_msg> sink(g, 2, [&](std::shared_ptr<batch> b) {
            std::uint64_t s = 0;
            for (std::int64_t v : *b)
                s += static_cast<std::uint64_t>(v);
            count.fetch_add(b->size(), std::memory_order_relaxed);
            sum.fetch_add(s, std::memory_order_relaxed);
            return flow::continue_msg();
        });
        flow::make_edge(src, limit);
        flow::make_edge(limit, sink);
        flow::make_edge(sink, limit.decrementer());
        src.activate();
        g.wait_for_all();
    }
    r->wall_s = seconds_since(t0);
    r->count = count.load();
    r->sum = sum.load();
}

// (c) two sources, keyed by v % keys into two partitions, each a serial node with its own hash map of counters.
// Per record, or batched: each source batch is split by partition before it is sent.
void run_keyed(int batched, std::uint64_t n, std::uint64_t keys, peer_tbb_result *r)
{
    flow::graph g;
    std::unordered_map<std::uint64_t, std::uint64_t, mixed_hash> state[2];
    std::uint64_t counted[2] = {0, 0};
    auto part_of = [](std::uint64_t key) { return static_cast<int>(mixed_hash()(key ^ 0x9e3779b97f4a7c15ull) & 1); };
    auto t0 = clock::now();
    std::atomic<std::uint64_t> next{0};
    if (!batched) {
        using keyed_msg = std::uint64_t;
        flow::function_node<keyed_msg, flow::continue_msg> sink0(g, flow::serial, [&](keyed_msg k) {
            state[0][k]++;
            counted[0]++;
            return flow::continue_msg();
        });
        flow::function_node<keyed_msg, flow::continue_msg> sink1(g, flow::serial, [&](keyed_msg k) {
            state[1][k]++;
            counted[1]++;
            return flow::continue_msg();
        });
        using router_t = flow::multifunction_node<std::int64_t, std::tuple<keyed_msg, keyed_msg>>;
        router_t route(g, flow::unlimited, [&](std::int64_t v, router_t::output_ports_type &out) {
            std::uint64_t k = static_cast<std::uint64_t>(v) % keys;
            if (part_of(k))
                std::get<1>(out).try_put(k);
            else
                std::get<0>(out).try_put(k);
        });
        flow::input_node<std::int64_t> src(g, [&](oneapi::tbb::flow_control &fc) -> std::int64_t {
            std::uint64_t v = next++;
            if (v >= n) {
                fc.stop();
                return 0;
            }
            return static_cast<std::int64_t>(v);
        });
        flow::make_edge(src, route);
        flow::make_edge(flow::output_port<0>(route), sink0);
        flow::make_edge(flow::output_port<1>(route), sink1);
        src.activate();
        g.wait_for_all();
    } else {
        using parts = std::shared_ptr<batch>;
        flow::limiter_node<std::shared_ptr<batch>> limit(g, kInFlight);
        flow::function_node<parts, flow::continue_msg> sink0(g, flow::serial, [&](parts b) {
            for (std::int64_t k : *b)
                state[0][static_cast<std::uint64_t>(k)]++;
            counted[0] += b->size();
            return flow::continue_msg();
        });
        flow::function_node<parts, flow::continue_msg> sink1(g, flow::serial, [&](parts b) {
            for (std::int64_t k : *b)
                state[1][static_cast<std::uint64_t>(k)]++;
            counted[1] += b->size();
            return flow::continue_msg();
        });
        using router_t = flow::multifunction_node<std::shared_ptr<batch>, std::tuple<parts, parts>>;
        router_t route(g, 2, [&](std::shared_ptr<batch> b, router_t::output_ports_type &out) {
            auto p0 = std::make_shared<batch>(), p1 = std::make_shared<batch>();
            p0->reserve(b->size());
            p1->reserve(b->size());
            for (std::int64_t v : *b) {
                std::uint64_t k = static_cast<std::uint64_t>(v) % keys;
                (part_of(k) ? p1 : p0)->push_back(static_cast<std::int64_t>(k));
            }
            std::get<0>(out).try_put(p0);
            std::get<1>(out).try_put(p1);
        });
        flow::input_node<std::shared_ptr<batch>> src(g, [&](oneapi::tbb::flow_control &fc) -> std::shared_ptr<batch> {
            auto b = batch_from(next.fetch_add(kBatch), n);
            if (!b)
                fc.stop();
            return b;
        });
        // the limiter lets kInFlight source batches in; one partition's sink hands each back (both get a part of
        // every batch, so the other's queue stays within a few batches of it)
        flow::make_edge(src, limit);
        flow::make_edge(limit, route);
        flow::make_edge(flow::output_port<0>(route), sink0);
        flow::make_edge(flow::output_port<1>(route), sink1);
        flow::make_edge(sink1, limit.decrementer());
        src.activate();
        g.wait_for_all();
    }
    r->wall_s = seconds_since(t0);
    r->count = counted[0] + counted[1];
    r->sum = state[0].size() + state[1].size(); // keys with state
    std::size_t bytes = 0;
    for (auto &m : state)
        bytes += m.bucket_count() * sizeof(void *) + m.size() * (sizeof(std::uint64_t) * 2 + 2 * sizeof(void *));
    r->state_bytes = bytes;
}

} // namespace

extern "C" int peer_tbb_run(int scenario, int batched, uint64_t n, uint64_t keys, peer_tbb_result *r)
{
    try {
        *r = peer_tbb_result{};
        oneapi::tbb::global_control threads(oneapi::tbb::global_control::max_allowed_parallelism, 2);
        if (scenario == 'a')
            run_chain(batched, n, r);
        else if (scenario == 'b')
            run_rebalance(batched, n, r);
        else
            run_keyed(batched, n, keys, r);
        return 0;
    } catch (...) {
        return -1;
    }
}
