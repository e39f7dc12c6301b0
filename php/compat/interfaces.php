<?php
// The interfaces eZDBFileHandler implements: eZ Publish's own when they can be loaded, else
// empty stand-ins under Ezdb\Compat, so the class also loads in a plain PHP process.

namespace Ezdb\Compat;

interface NoClusterFileHandlerInterface
{
}

interface NoDatabaseBasedClusterFileHandler
{
}

/** The first of $names that exists (asking the autoloader), else $fallback. */
function firstInterface(array $names, string $fallback): string
{
    foreach ($names as $name) {
        if (interface_exists($name)) {
            return $name;
        }
    }
    return $fallback;
}

class_alias(
    firstInterface(['eZClusterFileHandlerInterface'], NoClusterFileHandlerInterface::class),
    ClusterFileHandlerInterface::class
);
class_alias(
    firstInterface(['ezpDatabaseBasedClusterFileHandler', 'eZDatabaseBasedClusterFileHandler'], NoDatabaseBasedClusterFileHandler::class),
    DatabaseBasedClusterFileHandler::class
);
