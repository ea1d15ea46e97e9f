/* tinybuild's reference kernels: portable C99, bit-exact with TensorFlow Lite's
 * reference kernels (the OpResolverType.BUILTIN_REF path). One header per op
 * family (tinybuild/ops/<family>.py lowers it, <family>.c implements it);
 * tb_common.h holds the conventions and the fixed-point helpers they share.
 * Generated models and the targets' optimized kernels include this one. */
#ifndef TB_KERNELS_H
#define TB_KERNELS_H
#include "tb_common.h"
#include "activation.h"
#include "add.h"
#include "conv.h"
#include "elementwise.h"
#include "fully_connected.h"
#include "matmul.h"
#include "movement.h"
#include "pool.h"
#include "quantize.h"
#include "recurrent.h"
#include "reduce.h"
#include "reshape.h"
#include "resize.h"
#include "softmax.h"
#include "transpose_conv.h"
#include "unary.h"
#endif
