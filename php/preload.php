<?php
// opcache.preload script: compiles the Ezdb\ classes once for every PHP-FPM worker. libezdb
// itself is preloaded by ffi.preload (a header written by php/install.php), not here.

foreach (['Exception', 'Library', 'Rules', 'FileInfo', 'GenerationLock', 'CacheRun', 'Cluster'] as $class) {
    require_once __DIR__ . "/src/Ezdb/$class.php";
}
