#include "identity/clients.h"
