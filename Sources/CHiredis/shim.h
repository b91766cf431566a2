#include <hiredis/hiredis.h>
#include <hiredis/async.h>
// The adapter is a header of static functions, so including it here compiles
// redisLibuvAttach into every module that imports CHiredis.
#include <hiredis/adapters/libuv.h>
