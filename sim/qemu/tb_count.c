/* tinybuild: instruction-counting TCG plugin for QEMU (plugin API version 1,
 * QEMU 4.2 .. 8.x; Debian 12 ships QEMU 7.2 built with plugin support but no
 * plugins and no qemu-plugin.h, so the few declarations used are written out
 * below).
 *
 * Loaded with
 *   -plugin <this .so>,mark=<tb_mark address>,exit=<tb_exit address>,
 *           start=<reset handler address>,limit=<max instructions>,out=<result file>
 *           [,stack_lo=<__stack_start__>,stack_hi=<__stack_end__>][,fault=<fault handler address>]
 * it counts every executed guest instruction with an inline add per
 * instruction (exact also when a block is left half way, e.g. by an exception
 * or an icount I/O recompile, and counting Thumb instructions skipped inside
 * an IT block, as the core spends a cycle on each), records the count each
 * time the instruction at `mark` runs (tb_mark, called before every layer),
 * the count before the first instruction at `start` runs (what a machine's
 * boot ROM ran before the firmware's own reset code: RISC-V virt's reset
 * vector at 0x1000) and before the first instruction at `exit` (tb_exit). A callback
 * per executed block remembers the block's address (for error messages) and
 * stops QEMU once the count passes `limit`. With stack_lo/stack_hi, a callback
 * per guest store remembers the lowest address written in [stack_lo, stack_hi)
 * before tb_exit runs: the peak stack of a firmware whose startup does not
 * paint its stack (the unicorn simulator paints it from outside; QEMU's ELF
 * loader zero-fills it and refuses a second image over it). Exception entry
 * stacking is not a guest store and is not seen (a fault ends the run anyway).
 * With fault, the block that ran before the first entry into the fault handler
 * is kept: where the firmware was when a fault left no stacked PC.
 * At exit the result file gets
 *   insns <count>\nstart <count at start, or -1>\nexit <count at tb_exit, or -1>\nlast_pc <addr>\n
 *   limit_hit <0|1>\nstack_low <lowest stack address stored to, or -1>\n
 *   fault_block <address of that block, or -1>\nmarks <n>\n<count>\n...
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- QEMU plugin API, version 1 (the subset used) ----------------------------- */
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char *target_name;
  struct { int min; int cur; } version;
  bool system_emulation;
  union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef uint32_t qemu_plugin_meminfo_t;
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* -- state ------------------------------------------------------------------------ */
static uint64_t insns;                 /* executed instructions (inline adds) */
static uint64_t exit_insns = UINT64_MAX;
static uint64_t start_insns = UINT64_MAX;
static uint64_t start_addr = UINT64_MAX;
static uint64_t last_pc;
static uint64_t limit = UINT64_MAX;
static uint64_t mark_addr = UINT64_MAX, exit_addr = UINT64_MAX;
static int limit_hit;
static uint64_t stack_lo = UINT64_MAX, stack_hi; /* [lo, hi): watched for stores when set */
static uint64_t stack_low = UINT64_MAX;          /* lowest stack address stored to before tb_exit */
static uint64_t fault_addr = UINT64_MAX, fault_block = UINT64_MAX;
static uint64_t *marks;
static size_t n_marks, cap_marks;
static char *out_path;

static void write_results(void) {
  if (!out_path) return;
  FILE *f = fopen(out_path, "w");
  if (!f) return;
  fprintf(f, "insns %" PRIu64 "\n", insns);
  if (start_insns == UINT64_MAX) fprintf(f, "start -1\n");
  else fprintf(f, "start %" PRIu64 "\n", start_insns);
  if (exit_insns == UINT64_MAX) fprintf(f, "exit -1\n");
  else fprintf(f, "exit %" PRIu64 "\n", exit_insns);
  fprintf(f, "last_pc %" PRIu64 "\nlimit_hit %d\n", last_pc, limit_hit);
  if (stack_low == UINT64_MAX) fprintf(f, "stack_low -1\n");
  else fprintf(f, "stack_low %" PRIu64 "\n", stack_low);
  if (fault_block == UINT64_MAX) fprintf(f, "fault_block -1\n");
  else fprintf(f, "fault_block %" PRIu64 "\n", fault_block);
  fprintf(f, "marks %zu\n", n_marks);
  for (size_t i = 0; i < n_marks; i++) fprintf(f, "%" PRIu64 "\n", marks[i]);
  fclose(f);
}

static void on_atexit(qemu_plugin_id_t id, void *userdata) {
  (void)id;
  (void)userdata;
  write_results();
}

static void on_mark(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (n_marks == cap_marks) {
    cap_marks = cap_marks ? 2 * cap_marks : 256;
    marks = realloc(marks, cap_marks * sizeof *marks);
    if (!marks) abort();
  }
  marks[n_marks++] = insns;
}

static void on_exit_insn(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (exit_insns == UINT64_MAX) exit_insns = insns;
}

static void on_start_insn(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (start_insns == UINT64_MAX) start_insns = insns;
}

static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata) {
  (void)vcpu;
  (void)info;
  (void)userdata;
  if (vaddr >= stack_lo && vaddr < stack_hi && vaddr < stack_low && exit_insns == UINT64_MAX)
    stack_low = vaddr;
}

static void on_block(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  uint64_t pc = (uint64_t)(uintptr_t)userdata;
  if (pc == fault_addr && fault_block == UINT64_MAX) fault_block = last_pc;
  last_pc = pc;
  if (insns > limit && !limit_hit) {
    limit_hit = 1;
    exit(3);     /* runs the atexit callbacks: the results are written */
  }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS,
                                       (void *)(uintptr_t)qemu_plugin_tb_vaddr(tb));
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    /* Callbacks first: they run before this instruction's own add. */
    if (pc == mark_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (pc == exit_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_exit_insn, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (pc == start_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start_insn, QEMU_PLUGIN_CB_NO_REGS, NULL);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insns, 1);
    if (stack_lo != UINT64_MAX)
      qemu_plugin_register_vcpu_mem_cb(insn, on_store, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_W, NULL);
  }
}

static uint64_t parse_u64(const char *s) { return strtoull(s, NULL, 0); }

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "mark=", 5)) mark_addr = parse_u64(a + 5);
    else if (!strncmp(a, "exit=", 5)) exit_addr = parse_u64(a + 5);
    else if (!strncmp(a, "start=", 6)) start_addr = parse_u64(a + 6);
    else if (!strncmp(a, "limit=", 6)) limit = parse_u64(a + 6);
    else if (!strncmp(a, "out=", 4)) out_path = strdup(a + 4);
    else if (!strncmp(a, "stack_lo=", 9)) stack_lo = parse_u64(a + 9);
    else if (!strncmp(a, "stack_hi=", 9)) stack_hi = parse_u64(a + 9);
    else if (!strncmp(a, "fault=", 6)) fault_addr = parse_u64(a + 6);
    else {
      fprintf(stderr, "tb_count: unknown argument '%s'\n", a);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
  return 0;
}
