<?php
// Stand-in for eZ Publish's eZClusterFileFailure, declared only when eZ Publish is not loaded:
// what processCache() returns, or a retrieve callback returns, instead of content.

class eZClusterFileFailure
{
    /** The entry is expired: regenerate it. */
    const FILE_EXPIRED = 1;
    /** The caller must generate the content itself and call storeCache(). */
    const FILE_CONTENT_GENERATE = 2;
    /** Do not cache: generate for this request only (also "retrieval failed"). */
    const FILE_RETRIEVAL_FAILED = 3;

    public $Errno;
    public $Message;

    public function __construct($errno, $message = false)
    {
        $this->Errno = $errno;
        $this->Message = $message;
    }

    /** The failure code (1, 2 or 3). */
    public function errno()
    {
        return $this->Errno;
    }

    public function message()
    {
        return $this->Message;
    }
}
