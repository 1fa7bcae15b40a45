/* util/kconfig: the build configuration (include/generated/autoconf.h) as C expressions.
 * CR_ENABLED(CONFIG_X) is 1 when a bool option is set and 0 otherwise, usable in if(). */
#ifndef CORRAL_KCONFIG_H
#define CORRAL_KCONFIG_H

#define CR__PLACEHOLDER_1 0,
#define CR__TAKE_SECOND(ignored, val, ...) val
#define CR__IS_DEFINED3(arg1_or_junk) CR__TAKE_SECOND(arg1_or_junk 1, 0)
#define CR__IS_DEFINED2(val) CR__IS_DEFINED3(CR__PLACEHOLDER_##val)
#define CR_ENABLED(option) CR__IS_DEFINED2(option)

#endif
